#!/bin/bash
# 8status the way 8control does it: one curl, the state cut out of the JSON by tr, grep and cut.
# Connection: OCTOPRINT_URL and OCTOPRINT_API_KEY, else ~/.octocmd.conf (or /etc/octocmd.conf) read as
# 8control reads it (cat | grep | cut). The benchmark times both.
if [ -n "$OCTOPRINT_URL" ]; then
  OCTOHOST="$OCTOPRINT_URL"; OCTOKEY="$OCTOPRINT_API_KEY"
else
  CFG=~/.octocmd.conf; [ -f "$CFG" ] || CFG=/etc/octocmd.conf
  OCTOHOST=`cat "$CFG" | grep OctoPrint_URL | cut -d '"' -f 4`
  OCTOKEY=`cat "$CFG" | grep OctoAPI_KEY | cut -d '"' -f 4`
fi
if [ "$1" != "-q" ]; then echo "Machine: $OCTOHOST"; fi
curl -s --connect-timeout 5 -m 3 -H "X-Api-Key: $OCTOKEY" "$OCTOHOST/api/connection" \
  | tr ',]}' '\n\n\n' | tr -d '"' | grep 'state:' | cut -d ':' -f 2
