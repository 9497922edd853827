/** A paused agent run kept in the portal (`hitl_client/_snapshot.py`): the checkpoints of one
 * pause, the first of which holds the run's serialized state (a `json` artifact) with its
 * sha256 in every checkpoint's context, and the integrity-checked load of that state. */

import type { HitlClient, RequestApprovalOptions } from "./client.js";
import { sha256Hex } from "./canonical.js";
import { HitlError } from "./errors.js";
import type { Checkpoint } from "./models.js";

export const INLINE_LIMIT = 1_500_000; // bytes; bigger snapshots are uploaded (2 MiB bodies)

async function artifact(client: HitlClient, name: string, text: string) {
  if (new TextEncoder().encode(text).length <= INLINE_LIMIT) {
    return { name, kind: "json" as const, content: text };
  }
  const uploaded = await client.uploadArtifact(text, { name, kind: "json" });
  return { name, kind: "json" as const, ref: uploaded.ref };
}

export type PauseRequest = {
  externalId: string;
  context: Record<string, unknown>;
  title: string;
  fields: Omit<RequestApprovalOptions, "context" | "source" | "externalId" | "artifacts">;
};

/** One checkpoint per request, the first holding the snapshot. A request submitted before is
 * found by its id and returned as it is (a serialized state differs from one serialization
 * to the next, so a repeat cannot be recognized by its body). */
export async function submitPause(
  client: HitlClient,
  source: RequestApprovalOptions["source"] & string,
  snapshot: { name: string; text: string },
  requests: PauseRequest[],
): Promise<Checkpoint[]> {
  const digest = await sha256Hex(snapshot.text);
  const checkpoints: Checkpoint[] = [];
  let holder: string | null = null;
  for (const request of requests) {
    const existing = await client.findCheckpoint(request.externalId);
    if (existing !== null) {
      holder ??= existing.id;
      checkpoints.push(existing);
      continue;
    }
    const context: Record<string, unknown> = { ...request.context, snapshot_sha256: digest };
    if (holder) context.snapshot_checkpoint = holder;
    const cp = await client.requestApproval(request.title, {
      ...request.fields,
      context: { [source]: context },
      source,
      externalId: request.externalId,
      artifacts: holder ? undefined : [await artifact(client, snapshot.name, snapshot.text)],
    });
    holder ??= cp.id;
    checkpoints.push(cp);
  }
  return checkpoints;
}

/** The pause's stored state, from the portal, refused if its digest differs. */
export async function loadSnapshot(client: HitlClient, cp: Checkpoint, source: string, name: string): Promise<string> {
  const all = (cp.data.context ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const context = all[source] ?? {};
  const holderId = (context.snapshot_checkpoint as string | undefined) || cp.id;
  const holder = await client.getCheckpoint(holderId);
  const found = (holder.data.artifacts ?? []).filter((a) => a.name === name);
  if (!found.length) throw new HitlError(`checkpoint ${holderId} has no stored ${name}`);
  const content = await client.artifactContent(found[0].id);
  const text = new TextDecoder().decode(content);
  if ((await sha256Hex(text)) !== context.snapshot_sha256) {
    throw new HitlError(`the stored ${name} does not match its sha256: refusing to load it`);
  }
  return text;
}
