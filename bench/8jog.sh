#!/bin/bash
# 8jog X Y Z (or 8jog Z) the way 8control does it: one curl POST to /api/printer/printhead, its answer
# captured and echoed if not empty. (8control also flips each sign; that costs no process, so it is left out.)
# Connection: OCTOPRINT_URL and OCTOPRINT_API_KEY, else ~/.octocmd.conf (or /etc/octocmd.conf) read as
# 8control reads it (cat | grep | cut). The benchmark times both.
if [ -n "$OCTOPRINT_URL" ]; then
  OCTOHOST="$OCTOPRINT_URL"; OCTOKEY="$OCTOPRINT_API_KEY"
else
  CFG=~/.octocmd.conf; [ -f "$CFG" ] || CFG=/etc/octocmd.conf
  OCTOHOST=`cat "$CFG" | grep OctoPrint_URL | cut -d '"' -f 4`
  OCTOKEY=`cat "$CFG" | grep OctoAPI_KEY | cut -d '"' -f 4`
fi
x=$1; y=$2; z=$3
if [ -z "$y" ]; then x=0; y=0; z=$1; fi
s="`curl -s --connect-timeout 5 -m 3 -H "X-Api-Key: $OCTOKEY" -H "Content-Type: application/json" -X POST \
  -d '{"command": "jog", "x": '$x', "y": '$y', "z": '$z'}' "$OCTOHOST/api/printer/printhead" 2>&1`"
if [ "$s" ]; then echo "$s"; fi
