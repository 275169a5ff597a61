# Sourced by the scripts that run Python tools from PyPI: `python_venv NAME PINS` makes (once,
# and again when PINS change) the virtual environment ~/.cache/rollcall/NAME with the pinned
# packages, and sets $py to its interpreter.
python_venv() {
  local venv=$HOME/.cache/rollcall/$1 pins=$2
  if [ "$(cat "$venv/pins" 2>/dev/null)" != "$pins" ]; then
    echo "making $venv with $pins" >&2
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one word a pin
    "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
    echo "$pins" >"$venv/pins"
  fi
  py=$venv/bin/python
}
