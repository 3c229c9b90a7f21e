#!/usr/bin/env bash
# Makes a self-signed certificate for localhost, 127.0.0.1 and ::1 (30 days,
# P-256) with openssl, for the TLS examples and scripts:
#
#   bash scripts/tls-cert.sh [DIR]      # writes DIR/cert.pem and DIR/key.pem (default target/tls)
#
# Never a key that pretends to be real: made fresh, kept under target/.
set -euo pipefail
dir="${1:-target/tls}"
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
echo "$dir/cert.pem $dir/key.pem"
