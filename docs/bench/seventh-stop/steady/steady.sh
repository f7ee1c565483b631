#!/bin/bash
# steady.sh CHECKOUT OUT_PREFIX [spy]: `whistle up` of CHECKOUT (this repo's venv), two rounds of
# 600 alarms to warm it, then three rounds of 1000 alarms at ~200/s, each with the broker's and
# the worker's CPU (/proc/PID/stat, 10 ms ticks); with "spy", py-spy records the first round.
# Round 3 falls where the warm-up's tasks pass their deadlines (escalations): compare rounds 1-2.
here=$(cd "$(dirname "$0")" && pwd); venv=$(cd "$here/../../../.." && pwd)/.venv
code=$1; out=$2; d=$(mktemp -d)
cd $code; export PYTHONPATH=$code
rm -rf $d && mkdir -p $d && ($venv/bin/whistle up --data $d/data --port 26$((RANDOM%900+100)) > $d/up.log 2>&1 &) ; sleep 20
B=$(grep -o "kafka://[0-9.:]*" $d/up.log | head -1); B=${B#kafka://}
J=$(pgrep -f "kafka.Kafka.*$d" | head -1); W=$(pgrep -f "streams.cli worker" | head -1)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
for i in 1 2; do $venv/bin/python $here/probe.py $B 600 0.003 > /dev/null 2>&1; done
for i in 1 2 3; do
  j0=$(ticks $J); w0=$(ticks $W)
  if [ "$3" = spy ] && [ $i = 1 ]; then ($venv/bin/py-spy record --pid $W --duration 5 --format raw -o ${out}-spy.txt > /dev/null 2>&1 &); fi
  $venv/bin/python $here/probe.py $B 1000 0.003 2>&1 | grep -E "total|of"
  j1=$(ticks $J); w1=$(ticks $W)
  echo "  round $i: broker cpu $((j1-j0)) ticks, worker $((w1-w0)) ticks (10 ms each) for 1000 alarms"
done 2>&1 | tee ${out}.txt
pkill -INT -f "whistle up --data $d/data"; sleep 5; rm -rf $d
