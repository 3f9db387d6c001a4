"""Which programs a non-admin may make the gateway host run: stdio upstreams and their environment.

A stdio upstream runs `command args...` on the gateway host with `env` added to a minimal
environment. Admins may run anything. Everyone else may launch only what an admin listed in
BASTION_STDIO_COMMANDS, and may not set environment variables that change what runs.

Matching rule (strict): an entry is a shell-quoted command line, e.g.
``/usr/local/bin/mcp-github`` or ``npx -y @modelcontextprotocol/server-memory``. The stdio
upstream's command and its leading arguments must equal the entry's words exactly; by default no
further argument is allowed. An entry ending in a lone ``*`` also allows further *plain* arguments:
ones that do not start with ``-`` (an option such as ``--eval``, ``-e``, ``-c``, ``--require`` or
``--import`` could turn an interpreter or a package runner into arbitrary code). List the script or
the package, never a bare interpreter or runner (``node *`` or ``npx -y *`` would run any file or
package).

Environment (deny-list, case-insensitive): credential variables have open-ended names that differ
per server (GITHUB_TOKEN, BRAVE_API_KEY, ...), so an allow-list of names would force admins to
enumerate every server's keys; instead the families of variables that load code, pick the program,
configure an interpreter, shell or package manager, or redirect TLS and proxies are refused.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from bastion.core.errors import Forbidden
from bastion.core.models import Frozen, UpstreamSpec

OPEN_TAIL = "*"

# Exact names (compared upper-cased).
_DENIED_NAMES = frozenset(
    {
        "PATH", "HOME", "ENV", "BASH_ENV", "SHELL", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH",
        "GLOBIGNORE", "PROMPT_COMMAND", "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF",
        "GLIBC_TUNABLES", "TMPDIR", "OPENSSL_CONF", "OPENSSL_ENGINES", "OPENSSL_MODULES", "SSL_CERT_FILE",
        "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
        "NO_PROXY", "CLASSPATH", "VIRTUAL_ENV", "EDITOR", "VISUAL", "PAGER", "BROWSER", "LESSOPEN",
        "LESSCLOSE", "SSH_ASKPASS", "PHPRC", "PHP_INI_SCAN_DIR", "TCLLIBPATH", "COMSPEC", "PATHEXT",
    }
)
# Families (compared upper-cased): the dynamic loader, interpreter and runtime start-up and module
# paths, package managers (their config can name scripts to run), git and configuration homes.
_DENIED_PREFIXES = (
    "LD_", "DYLD_", "MALLOC_", "PYTHON", "PIP_", "UV_", "CONDA", "NODE_", "NPM_", "YARN_", "PNPM_",
    "COREPACK_", "BUN_", "DENO_", "PERL", "RUBY", "GEM_", "BUNDLE_", "JAVA_", "_JAVA_", "JDK_", "MAVEN_",
    "GRADLE_", "DOTNET_", "CORECLR_", "COMPLUS_", "GOFLAGS", "GOROOT", "GOPATH", "GOENV", "GOTOOLCHAIN", "GOPROXY", "CARGO_", "RUSTC", "RUSTUP_", "LUA_", "R_",
    "GIT_", "XDG_", "BASH_FUNC_", "BASH_",
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CommandRule(Frozen):
    """One allow-list entry: the exact leading words, and whether plain arguments may follow."""

    words: tuple[str, ...]
    open_tail: bool = False

    def allows(self, argv: tuple[str, ...]) -> bool:
        fixed = len(self.words)
        if argv[:fixed] != self.words:
            return False
        extra = argv[fixed:]
        if not extra:
            return True
        return self.open_tail and all(arg and not arg.startswith("-") and "\0" not in arg for arg in extra)


def parse_rule(entry: str) -> CommandRule:
    """An allow-list entry as a rule; ValueError says what is wrong with it."""
    try:
        words = shlex.split(entry)
    except ValueError as exc:
        raise ValueError(f"stdio command {entry!r}: {exc}") from None
    open_tail = bool(words) and words[-1] == OPEN_TAIL
    if open_tail:
        words = words[:-1]
    if not words or OPEN_TAIL in words:
        raise ValueError(f"stdio command {entry!r}: name a command; '*' may only end the line")
    return CommandRule(words=tuple(words), open_tail=open_tail)


def parse_rules(entries: Iterable[str]) -> tuple[CommandRule, ...]:
    return tuple(parse_rule(entry) for entry in entries)


def denied_env(names: Iterable[str]) -> list[str]:
    """The variable names a non-admin may not set, in the order given."""
    out = []
    for name in names:
        upper = name.upper()
        if not _NAME.fullmatch(name) or upper in _DENIED_NAMES or upper.startswith(_DENIED_PREFIXES):
            out.append(name)
    return out


def check_launch(spec: UpstreamSpec, rules: tuple[CommandRule, ...]) -> None:
    """Raise Forbidden unless a non-admin may have the host run `spec` (nothing for non-stdio)."""
    if spec.transport != "stdio":
        return
    refused = denied_env(spec.env)
    if refused:
        raise Forbidden(
            f"upstream {spec.name!r}: only an admin may set {', '.join(sorted(refused))} (environment "
            "variables that change what runs or how it loads)",
            missing="role:admin",
        )
    argv = (spec.command or "", *spec.args)
    if not any(rule.allows(argv) for rule in rules):
        raise Forbidden(
            f"upstream {spec.name!r}: only an admin may run this command; an admin can allow it for "
            "everyone in BASTION_STDIO_COMMANDS (exact command and arguments)",
            missing="role:admin",
        )
