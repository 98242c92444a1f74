#!/usr/bin/env bash
# test/raw_put.sh PORT TUBE BODY-FILE: put a file's bytes as a job body with
# a raw socket, the way a foreign (or hostile) producer would.  Prints the
# server's reply line.
set -euo pipefail
port=$1 tube=$2 file=$3
len=$(stat -c %s "$file")
exec 3<>"/dev/tcp/127.0.0.1/$port"
{ printf 'use %s\r\nput 0 0 60 %d\r\n' "$tube" "$len"; cat "$file"; printf '\r\n'; } >&3
read -r -u 3 using
read -r -u 3 reply
echo "${reply%$'\r'}"
exec 3>&-
