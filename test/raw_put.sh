#!/usr/bin/env bash
# test/raw_put.sh TUBE BODY-FILE: put a file's bytes as a job body with a
# raw socket, the way a foreign (or hostile) producer would, to the
# beanstalkd on 127.0.0.1:$BSPORT.  Prints the server's reply line.
set -euo pipefail
port=${BSPORT:?set BSPORT to the port of the beanstalkd under test}
tube=$1 file=$2
len=$(stat -c %s "$file")
exec 3<>"/dev/tcp/127.0.0.1/$port"
{ printf 'use %s\r\nput 0 0 60 %d\r\n' "$tube" "$len"; cat "$file"; printf '\r\n'; } >&3
read -r -u 3 using
read -r -u 3 reply
echo "${reply%$'\r'}"
exec 3>&-
