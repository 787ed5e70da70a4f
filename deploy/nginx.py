"""Render deploy/nginx.conf for one machine and run it in the foreground.

The shipped file is the production configuration with a few ${UPPERCASE} placeholders:
where it listens, where gunicorn is, the folder for its pid, logs and temporary files, and
the browser origins that may read its own errors.
Tests and `bin/dev stack` fill them and run exactly the result.
"""

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf")
# nginx's own variables are lowercase ($remote_addr, ${request_id}): only these are ours.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill every ${NAME} placeholder of template; a placeholder without a value is an error."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: str(values[match[1]]), template)


def origins_map(origins: Iterable[str]) -> str:
    """The lines of the map that lets these browser origins read nginx's own errors."""
    return "\n".join(f'        "{origin}" $http_origin;' for origin in origins)


def write_config(
    folder: Path, address: str, port: int, upstream: str, origins: Iterable[str] = ()
) -> Path:
    """Write the rendered configuration into folder, home of its pid, logs and temp files."""
    # nginx's workers run as an unprivileged user when started as root; they write body and
    # response temp files below this folder.
    folder.chmod(0o755)
    config = folder / "nginx.conf"
    values = {
        "PROXY_ADDRESS": address,
        "PROXY_PORT": port,
        "UPSTREAM": upstream,
        "RUN_DIR": folder,
        "CORS_ORIGINS_MAP": origins_map(origins),
    }
    config.write_text(render(TEMPLATE.read_text(), values))
    return config


def command(config: Path) -> list[str]:
    """nginx in the foreground with config, its relative paths inside config's folder."""
    return ["nginx", "-p", str(config.parent), "-c", str(config), "-g", "daemon off;"]
