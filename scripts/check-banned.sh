#!/bin/sh
# Fail when C sources use functions we do not allow (unbounded or unsafe).
set -u
cd "$(dirname "$0")/.." || exit 1
pat='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|sscanf|strncpy)[[:space:]]*\('
hits=$(grep -nE "$pat" src/*.c src/*.h ftpd/*.c ftpd/*.h examples/*.c examples/common/*.c bench/*.c 2>/dev/null | grep -vE '^[^:]+:[0-9]+:\s*(/?\*|//)')
if [ -n "$hits" ]; then
    echo "banned functions in use:" >&2
    echo "$hits" >&2
    exit 1
fi
echo "check-banned: ok"
