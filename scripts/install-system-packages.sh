#!/usr/bin/env bash
# Debian packages that some tests need, installed by `make test` (the tests start their own
# servers on loopback; a package's own service is never needed). Never fails: where a package
# cannot be installed (not root, no apt-get, no registry), the tests that need it skip and
# say why. Add a package to PACKAGES to have it installed.
set -u
PACKAGES=(
    chromium         # tests/test_web_ui.py: the web UI in a headless browser
    chromium-driver  # ...driven by selenium through Debian's chromedriver
    redis-server     # tests/test_scale_out.py: the celery executor's broker
    postgresql       # tests/test_scale_out.py: Dagster's instance storage on PostgreSQL
)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-packages: cannot install ${missing[*]} (needs apt-get as root); their tests will skip." >&2
    exit 0
fi
echo "install-system-packages: installing ${missing[*]}"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
    echo "install-system-packages: apt-get could not install ${missing[*]}; their tests will skip." >&2
fi
exit 0
