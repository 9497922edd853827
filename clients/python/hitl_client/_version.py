"""The package version, in a module of its own so that any module can import it (the package's
`__init__` imports the client, so the client cannot import it from there).

`__version__` is the release, the same for hitl-client and hitl-portal (the portal's tests
check that they agree). `API_VERSION` is the REST API this client speaks (MAJOR.MINOR): a
minor adds, a major removes or changes (and gets a new path, /api/v2/). The client works with
a server whose API has the same major and the same or a newer minor (docs/client.md,
"Versions"); `compatibility_problem` is that rule."""

__version__ = "0.1.0"
API_VERSION = "1.0"


def _major_minor(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor.partition(".")[0] or 0)


def compatibility_problem(server_version: str | None, server_api: str | None) -> str:
    """'' if a server stating `server_api` (and release `server_version`) can serve this client,
    else why not, naming both versions."""
    ours = f"hitl-client {__version__} (API {API_VERSION})"
    if not server_api:
        return (
            f"{ours} cannot work with this server: it does not state its API version "
            "(a portal older than 0.1.0, or not a HITL Portal)"
        )
    theirs = f"the server's hitl-portal {server_version or '?'} (API {server_api})"
    try:
        (major, minor), (need_major, need_minor) = (
            _major_minor(server_api),
            _major_minor(API_VERSION),
        )
    except ValueError:
        return f"{ours} cannot read {theirs}"
    if major != need_major:
        return f"{ours} cannot work with {theirs}: another major API version"
    if minor < need_minor:
        return (
            f"{ours} needs API {API_VERSION} or a newer {need_major}.x; {theirs} is older: "
            f"upgrade the portal, or pip install 'hitl-client=={server_version or '<its version>'}'"
        )
    return ""
