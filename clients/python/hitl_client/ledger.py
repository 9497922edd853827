"""Checking the portal's ledger from the outside (no Django; `cryptography` for Ed25519).

`verify_ledger` is what `hitl verify` runs, acting as a witness: it keeps the last head it
accepted (and the pinned public keys) in a local state file, and on every run checks that
the portal's new head is signed by a pinned key and consistent with that one (RFC 9162
2.1.4.2: the old tree is a prefix of the new). Any truncation, rewrite or fork since the
last run fails. `events` are checked for inclusion (hashing each event's entry text
itself) at the place their number says (event #n is leaf n - 1), and `full` re-hashes every
entry of the log (managers): a changed event is caught even when its stored hash and the
tree were recomputed, since the head cannot be re-signed without the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hitl_client.errors import ApiError, HitlError

if TYPE_CHECKING:
    from hitl_client.client import HitlClient

HEAD_FORMAT = "hitl-tree-head/v1"


def _children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_of(entry: str) -> bytes:
    return hashlib.sha256(b"\x00" + entry.encode()).digest()


# --- RFC 9162 proof verification (the inner/border decomposition) --------------------------


def _decompose(index: int, size: int) -> tuple[int, int]:
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: list[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        seed = _children(sibling, seed) if (index >> i) & 1 else _children(seed, sibling)
    return seed


def _chain_inner_right(seed: bytes, proof: list[bytes], index: int) -> bytes:
    for i, sibling in enumerate(proof):
        if (index >> i) & 1:
            seed = _children(sibling, seed)
    return seed


def _chain_border_right(seed: bytes, proof: list[bytes]) -> bytes:
    for sibling in proof:
        seed = _children(sibling, seed)
    return seed


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    if index >= size:
        raise ValueError(f"index {index} is outside a tree of {size}")
    inner, border = _decompose(index, size)
    if len(proof) != inner + border:
        raise ValueError(f"wrong proof length {len(proof)}, expected {inner + border}")
    return _chain_border_right(_chain_inner(leaf, proof[:inner], index), proof[inner:])


def consistent(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> bool:
    if size2 < size1:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    seed, start = (root1, 0) if size1 == 1 << shift else (proof[0], 1)
    if len(proof) != start + inner + border:
        return False
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    return hash1 == root1 and hash2 == root2


class TreeBuilder:
    """The root of entries appended one by one (for `full`)."""

    def __init__(self) -> None:
        self._peaks: list[tuple[int, bytes]] = []
        self.size = 0

    def add(self, leaf: bytes) -> None:
        height, value = 0, leaf
        while self._peaks and self._peaks[-1][0] == height:
            value = _children(self._peaks.pop()[1], value)
            height += 1
        self._peaks.append((height, value))
        self.size += 1

    def root(self) -> bytes:
        if not self._peaks:
            return hashlib.sha256(b"").digest()
        value = self._peaks[-1][1]
        for _h, peak in reversed(self._peaks[:-1]):
            value = _children(peak, value)
        return value


# --- signatures ----------------------------------------------------------------------------


def head_message(head: dict) -> bytes:
    return (
        f"{HEAD_FORMAT}\n{head['origin']}\n{int(head['tree_size'])}\n{head['root_hash']}\n"
        f"{int(head['timestamp'])}\n"
    ).encode()


def _verify_ed25519(public_b64: str, signature: bytes, message: bytes) -> bool:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:  # the client's only required dependency is httpx
        raise HitlError(
            "checking signatures needs `cryptography`: pip install 'hitl-client[verify]'"
        ) from None

    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64)).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def key_id_of(public_b64: str) -> str:
    return hashlib.sha256(base64.b64decode(public_b64)).hexdigest()[:16]


def head_problem(head: dict, keys: dict[str, str]) -> str:
    """'' if `head` is signed by one of `keys` (key id → base64 public key)."""
    try:
        key = keys.get(head["key_id"])
        signature = base64.b64decode(head["signature"])
        message = head_message(head)
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed head: {exc}"
    if key is None:
        return (
            f"head of size {head.get('tree_size')} is signed with an unknown key {head['key_id']}"
        )
    if not _verify_ed25519(key, signature, message):
        return f"the signature of the head of size {head['tree_size']} does not verify"
    return ""


HEAD_FIELDS = ("origin", "tree_size", "root_hash", "timestamp", "key_id", "signature")


def parse_head(text: str) -> dict:
    """A signed head from text: the head as JSON, or the last non-empty line of a witness
    file (one head per line, appended) or of a saved witness email. ValueError if neither
    is one."""
    lines = [line for line in text.splitlines() if line.strip()]
    for candidate in (text, lines[-1] if lines else ""):
        try:
            head = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(head, dict):
            missing = [name for name in HEAD_FIELDS if name not in head]
            if missing:
                raise ValueError(f"not a signed head: no {', '.join(missing)}")
            return head
    raise ValueError("not a head as JSON, nor a file whose last line is one")


def open_receipt(token: str, keys: dict[str, str]) -> dict:
    """A receipt's claims, checked offline against the portal's public keys (ValueError if
    it is not one the portal signed). Expiry and single use are the portal's to say:
    redeem it (`HitlClient.redeem`)."""
    try:
        header_b64, payload_b64, sig_b64 = token.split(".")

        def unb64(text: str) -> bytes:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

        header = json.loads(unb64(header_b64))
        claims = json.loads(unb64(payload_b64))
        signature = unb64(sig_b64)
    except ValueError as exc:
        raise ValueError(f"not a receipt: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("kid"), str):
        raise ValueError("not a receipt: the header is not an object with a string kid")
    key = keys.get(header["kid"])
    if key is None or not _verify_ed25519(key, signature, f"{header_b64}.{payload_b64}".encode()):
        raise ValueError("the receipt's signature does not verify")
    return claims


def action_sha256(tool: str | None, args: dict) -> str:
    """The fingerprint a receipt binds: canonical JSON of {"tool", "args"}."""
    text = json.dumps(
        {"tool": tool, "args": args}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


# --- the witness ---------------------------------------------------------------------------


@dataclass
class Report:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    head: dict | None = None
    previous: dict | None = None
    events: list[dict] = field(default_factory=list)
    entries_checked: int = 0
    notes: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "head": self.head,
            "previous": self.previous,
            "events": self.events,
            "entries_checked": self.entries_checked,
            "notes": self.notes,
        }


def default_state_path(base_url: str) -> Path:
    name = base_url.split("://", 1)[-1].replace("/", "_").replace(":", "_")
    home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return home / "hitl" / f"ledger-{name}.json"


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ledger-")
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
    os.replace(tmp, path)


def verify_ledger(
    client: HitlClient,
    *,
    state_path: Path,
    events: list[int] = (),  # type: ignore[assignment]
    full: bool = False,
    public_keys: list[str] = (),  # type: ignore[assignment]
    trusted_head: dict | None = None,
) -> Report:
    report = Report()
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if public_keys:
        keys = {key_id_of(k): k for k in public_keys}
    elif state.get("keys"):
        keys = dict(state["keys"])
    else:
        served = client.request("GET", "ledger/keys")
        keys = {k["key_id"]: k["public_key"] for k in served["keys"]}
        report.notes.append(
            "first run: trusting the portal's current keys "
            f"({', '.join(keys)}); pass --public-key to pin one you got out of band"
        )
    head = client.request("GET", "ledger/head")
    report.head = head
    problem = head_problem(head, keys)
    if problem:
        report.fail(problem)
        return report
    previous = trusted_head or state.get("head")
    report.previous = previous
    size = int(head["tree_size"])
    if previous:
        problem = head_problem(previous, keys)
        old = 0 if problem else int(previous["tree_size"])
        if problem:
            report.fail(f"the earlier head: {problem}")
        elif old > size:
            report.fail(f"the log shrank from {old} to {size} events since the head you trust")
        elif old == size and previous["root_hash"] != head["root_hash"]:
            report.fail(f"two different heads of size {size}: the log was rewritten (forked)")
        elif old < size:
            try:
                proof = client.request(
                    "GET", "ledger/proof/consistency", params={"from": old, "to": size}
                )
            except ApiError as exc:
                proof = {"proof": []}
                report.fail(f"the portal cannot prove consistency with your head: {exc}")
            if report.ok and not consistent(
                old,
                size,
                bytes.fromhex(previous["root_hash"]),
                bytes.fromhex(head["root_hash"]),
                [bytes.fromhex(h) for h in proof["proof"]],
            ):
                report.fail(
                    f"the head of size {size} is not consistent with the one of size {old} you "
                    "trust: history was rewritten"
                )
    for event in events:
        try:
            proof = client.request(
                "GET", "ledger/proof/inclusion", params={"event": event, "tree_size": size}
            )
        except ApiError as exc:
            report.fail(f"event {event}: {exc}")
            continue
        problem = _placement_problem(proof)
        if problem:
            report.events.append({"event": event, "seq": proof.get("seq"), "included": False})
            report.fail(f"event {event}: {problem}")
            continue
        leaf = leaf_of(proof["entry"])
        try:
            root = root_from_inclusion(
                int(proof["leaf_index"]),
                size,
                leaf,
                [bytes.fromhex(h) for h in proof["audit_path"]],
            )
        except ValueError as exc:
            root, detail = b"", str(exc)
        else:
            detail = ""
        included = root.hex() == head["root_hash"]
        report.events.append({"event": event, "seq": proof["seq"], "included": included})
        if not included:
            report.fail(
                f"event {event} (#{proof['seq']}) is not in the signed log as shown "
                f"{detail}".strip()
            )
    report.keys = keys
    if full and report.ok:
        _check_entries(client, report, head, previous)
    if report.ok:
        _save(state_path, {"url": client.base_url, "keys": keys, "head": head})
    return report


def _placement_problem(proof: dict) -> str:
    """'' if the proof puts the event where its number says: event #seq is leaf seq - 1, and
    the entry (whose hash the leaf is) carries that seq. Otherwise the portal shows the event
    at one place and proves another."""
    try:
        seq, index = int(proof["seq"]), int(proof["leaf_index"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed inclusion proof: {exc!r}"
    if index != seq - 1:
        return f"shown as #{seq} but proved at leaf index {index} (#{index + 1})"
    entry_seq = _seq_of(proof.get("entry"))
    if entry_seq != seq:
        return f"shown as #{seq} but its entry says #{entry_seq}"
    return ""


def _seq_of(entry: Any) -> Any:
    """The seq an entry (canonical JSON) carries; None if it is not one."""
    try:
        value = json.loads(entry)
    except (TypeError, ValueError):
        return None
    return value.get("seq") if isinstance(value, dict) else None


def report_keys(report: Report) -> dict[str, str]:
    return report.keys


def _check_entries(client: HitlClient, report: Report, head: dict, previous: dict | None) -> None:
    size = int(head["tree_size"])
    tree, start, last_seq = TreeBuilder(), 1, 0
    while start <= size:
        page = client.request("GET", "ledger/entries", params={"start": start, "limit": 1000})
        last_seq = page["last_seq"]
        for item in page["entries"]:
            if item["seq"] > size:
                break
            if item["seq"] != tree.size + 1:
                report.fail(f"event #{tree.size + 1} is missing from the log")
                return
            if _seq_of(item["entry"]) != item["seq"]:
                report.fail(
                    f"event #{item['seq']}'s entry says #{_seq_of(item['entry'])}: "
                    "the log is out of order"
                )
                return
            leaf = leaf_of(item["entry"])
            if item["hash"] != leaf.hex():
                report.fail(f"event #{item['seq']} does not match its leaf hash (changed)")
                return
            tree.add(leaf)
            at_previous = previous and tree.size == int(previous["tree_size"])
            if at_previous and tree.root().hex() != previous["root_hash"]:
                report.fail(
                    f"the first {tree.size} events do not hash to the head you trust: "
                    "history was rewritten"
                )
                return
        if not page["entries"] or page["next_start"] is None:
            break
        start = page["next_start"]
    report.entries_checked = tree.size
    if tree.size != size:
        report.fail(f"the signed head covers {size} events, the log holds {tree.size}")
    elif tree.root().hex() != head["root_hash"]:
        report.fail("the events do not hash to the signed head: history was rewritten")
    elif last_seq > size:
        # Newer events are fine if a newer signed head covers them (the sequencer went on).
        latest = client.request("GET", "ledger/head")
        if head_problem(latest, report_keys(report)) or int(latest["tree_size"]) < last_seq:
            report.fail(
                f"events #{size + 1}-#{last_seq} are in the log but under no signed head "
                "(written outside the sequencer)"
            )
