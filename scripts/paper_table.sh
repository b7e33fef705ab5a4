#!/usr/bin/env bash
# One of the paper's comparisons as DVC experiments, in one command: queue its rows (one
# experiment each, named), run the queue, print the table with `int compare`.
#
#   bash scripts/paper_table.sh 1|2|4|diagnostics [-S key=value ...]
#
#   1            Table 1, continuation sources on hard problems: the continuation_sources stage
#                (set PROPOSER=<model id or folder> to add the stronger-proposer row)
#   2            Table 2, SFT data variants x guided filter, measured after SFT on the training
#                problems (an evaluation benchmark `source: train` replaces the benchmarks list)
#   4            Table 4, InT + RL against RL from the base model and SFT on reference
#                solutions + RL (every model evaluated on the configured benchmarks)
#   diagnostics  per-token NLL of each data source under the base model, and next-token
#                entropy after SFT on InT data and on reference solutions
#
# Extra arguments go to every `dvc exp run` (e.g. -S rollouts.samples_per_problem=8). The
# workspace must be a git repository with a commit (`dvc exp` runs from one); experiments run
# one after another in temporary copies, so the workspace is left as it is. A name that exists
# already stops the script (DVC says so): `dvc exp remove <name>` first, or set PREFIX=<text>
# to name this batch differently. The table shows the experiments queued here alone (an
# experiment run for one stage carries the baseline's copies of the other metrics files);
# again later: `int compare --table N --exp NAME ...`. `dvc exp run --run-all` also runs
# anything queued before (`dvc queue status`). Inspect with `dvc exp show`.
set -euo pipefail

table="${1:-}"
if [[ -z "$table" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 2
fi
shift
extra=("$@")
prefix="${PREFIX:-}"
int_cmd=(python -m intervention_training.cli)
queued=()  # --exp NAME for each experiment this run queues: the table shows these alone

queue() {  # queue NAME TARGETS... -- SETTINGS...
    local name="$1"
    shift
    local targets=() settings=()
    while [[ $# -gt 0 && "$1" != "--" ]]; do targets+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    settings=("$@")
    # ${a[@]+"${a[@]}"}: an empty array under `set -u` on bash before 4.4 (macOS's 3.2)
    queued+=(--exp "${prefix}${name}")
    dvc exp run --queue -n "${prefix}${name}" ${settings[@]+"${settings[@]}"} \
        ${extra[@]+"${extra[@]}"} "${targets[@]}"
}

case "$table" in
    1)
        queue t1-policy continuation_sources --
        if [[ -n "${PROPOSER:-}" ]]; then
            queue t1-stronger continuation_sources -- -S "proposals.model=${PROPOSER}"
        fi
        ;;
    2)
        train='evaluation.benchmarks=[{name:train,source:train,subset:selected}]'
        queue t2-int eval_metrics@sft -- -S "$train" -S guided.enabled=true
        queue t2-nofilter eval_metrics@sft -- -S "$train" -S guided.enabled=false
        queue t2-int-only eval_metrics@sft -- -S "$train" -S guided.enabled=true \
            -S sft_data.variant=intervention_only
        queue t2-suffix eval_metrics@sft -- -S "$train" -S guided.enabled=true \
            -S sft_data.variant=prefix_intervention_suffix
        ;;
    4)
        all=(eval_metrics@base eval_metrics@sft eval_metrics@rl)
        queue t4-int-rl "${all[@]}" --
        queue t4-rl-from-base "${all[@]}" -- -S rl.init=base
        queue t4-refsft-rl "${all[@]}" -- -S sft_data.source=reference
        ;;
    diagnostics)
        queue diag-int nll entropy@base entropy@sft --
        queue diag-refsft entropy@sft -- -S sft_data.source=reference
        ;;
    *)
        echo "scripts/paper_table.sh: unknown table '$table' (1, 2, 4 or diagnostics)" >&2
        exit 2
        ;;
esac

run_status=0
dvc exp run --run-all || run_status=$?
compare_status=0
"${int_cmd[@]}" compare --table "$table" "${queued[@]}" || compare_status=$?
if ((run_status)); then
    echo "scripts/paper_table.sh: an experiment failed (dvc exp run --run-all exited" \
        "$run_status); see \`dvc queue status\` and \`dvc queue logs <name>\`" >&2
    exit "$run_status"
fi
exit "$compare_status"
