#!/usr/bin/env bash
# ensure_venv VENV PACKAGE VERSION: PACKAGE==VERSION from PyPI in its own venv
# at VENV (a helper the tests start). Does nothing when it is there already;
# installs python3-venv from Debian first if Python cannot make venvs.
ensure_venv() {
    local venv="$1" package="$2" version="$3"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$package') != '$version')" 2>/dev/null; then
        return 0
    fi
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        echo "setup: installing python3-venv"
        local sudo=
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    echo "setup: installing $package $version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
}
