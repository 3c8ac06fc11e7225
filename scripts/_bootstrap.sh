# Shared by scripts/run and scripts/test: make .venv and install what NanoClaw needs.
# Sourced, not run. Idempotent: a second run only checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

find_python() {
  for py in "${NANOCLAW_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  return 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

# ensure_system_packages [extra commands…]: bubblewrap always; each extra is a command named like its
# package, or command=package.
ensure_system_packages() {
  [ "$(uname -s)" = Linux ] || return 0
  local missing=()
  command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
  # Each argument is a command, or command=package where the package is named otherwise.
  for spec in "$@"; do command -v "${spec%%=*}" >/dev/null 2>&1 || missing+=("${spec#*=}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null 2>&1 && as_root true; then
    echo "==> installing ${missing[*]} (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "!! NanoClaw's sandbox needs: ${missing[*]}" >&2
    echo "   install it with your package manager, e.g.: sudo apt-get install ${missing[*]}" >&2
    return 1
  fi
}

ensure_venv() {
  local extras="${1:-}" spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    local py; py="$(find_python)" || { echo "!! NanoClaw needs Python 3.11 or newer" >&2; exit 1; }
    echo "==> creating .venv with $py"
    "$py" -m venv .venv
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local stamp=".venv/.nanoclaw-installed${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing nanoclaw${extras:+[$extras]} into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
    touch "$stamp"
  fi
}
