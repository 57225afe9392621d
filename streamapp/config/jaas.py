"""``sasl.jaas.config``, read as Kafka reads it.

Kafka's format is one JAAS login entry: ``<LoginModule class> <flag> [name=value ...];`` where a value is
a double-quoted string (``\\`` escapes the next character) or a bare token. For PLAIN and SCRAM the options
``username`` and ``password`` are the credentials.

Why in the configuration: the value is checked when the configuration is resolved (``settings.py``), so a
bad login fails at start naming the key, and the Kafka client only takes the login from it
(``streamapp/kafka/security.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamapp.errors import ConfigError

KEY = "sasl.jaas.config"

#: The login module each mechanism needs (Kafka's class names).
LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
_FLAGS = ("required", "requisite", "sufficient", "optional")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>"(?:[^"\\]|\\.)*")   # "a value"
      | (?P<eq>=)
      | (?P<semi>;)
      | (?P<bare>[^\s=;"]+)
    )""",
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class JaasLogin:
    module: str
    username: str
    password: str

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"JaasLogin(module={self.module!r}, username={self.username!r}, password=[hidden])"


def parse_jaas(text: str, mechanism: str) -> JaasLogin:
    """The login of ``text`` for ``mechanism``; a ConfigError naming ``sasl.jaas.config`` otherwise.

    Error messages never quote the text: it holds the password.
    """
    tokens = _tokens(text)
    if len(tokens) < 2 or tokens[0][0] != "bare" or tokens[1][0] != "bare":
        raise ConfigError(KEY, 'expected \'<LoginModule> required username="..." password="...";\'')
    module, flag = tokens[0][1], tokens[1][1]
    if flag.lower() not in _FLAGS:
        raise ConfigError(KEY, f"expected a control flag ({', '.join(_FLAGS)}) after {module}, got {flag!r}")
    rest = tokens[2:]
    if not rest or rest[-1][0] != "semi":
        raise ConfigError(KEY, "the login entry must end with ';'")
    rest = rest[:-1]
    if any(kind == "semi" for kind, _ in rest):
        raise ConfigError(KEY, "holds more than one login entry; give one")
    options: dict[str, str] = {}
    for index in range(0, len(rest), 3):
        triple = rest[index : index + 3]
        kinds = tuple(kind for kind, _ in triple)
        if kinds not in (("bare", "eq", "quoted"), ("bare", "eq", "bare")):
            raise ConfigError(KEY, "expected name=value options after the control flag")
        (_, name), _, (value_kind, value) = triple
        options[name] = _unquote(value) if value_kind == "quoted" else value
    expected = LOGIN_MODULES[mechanism]
    if module != expected:
        raise ConfigError(KEY, f"sasl.mechanism={mechanism} needs the login module {expected}, not {module}")
    missing = [name for name in ("username", "password") if not options.get(name)]
    if missing:
        raise ConfigError(KEY, f"the login entry has no {' and no '.join(missing)}")
    return JaasLogin(module=module, username=options["username"], password=options["password"])


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            if text[position:].strip():
                raise ConfigError(KEY, f"unexpected text at character {position + 1} (unclosed quote?)")
            break
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)
