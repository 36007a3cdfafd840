#!/usr/bin/env bash
# Second-order MAML against Reptile and FOMAML on 5-way Omniglot at a longer budget than
# paper-omniglot.sh's: the budget of scripts/paper-lib.sh (16 filters, plain-SGD inner loop at
# 0.1), 5 inner steps on minibatches of 10 of 50-sample tasks, 5-way 1-shot and 5-shot accuracy
# against meta-iterations. Reptile and FOMAML at the recipe's outer step 1; MAML, which diverges
# there, at 0.1 and 0.3; FOMAML at 0.3 too, MAML's step.
# Usage: bash scripts/paper-maml-omniglot.sh [meta-iterations] [held-out episodes]
#   [measuring points...] (default 4000, 200, 500 1000 2000). Runs go to out/paper-maml-omniglot/,
#   the points to its results.csv and the plot to ${PLOT:-out/paper-maml-omniglot/accuracy.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/paper-lib.sh
curve_args paper-maml-omniglot "$@"
common=(--iters "$iters" --inner-steps 5 --train-shots 10 --inner-batch 10)
snapshots "$runs/reptile" "$at" "${common[@]}" --algo reptile --outer-lr 1
snapshots "$runs/fomaml" "$at" "${common[@]}" --algo fomaml --outer-lr 1
snapshots "$runs/fomaml-0.3" "$at" "${common[@]}" --algo fomaml --outer-lr 0.3
snapshots "$runs/maml-0.3" "$at" "${common[@]}" --algo maml --outer-lr 0.3
snapshots "$runs/maml-0.1" "$at" "${common[@]}" --algo maml --outer-lr 0.1
curves "$runs" "$at" reptile fomaml fomaml-0.3 maml-0.3 maml-0.1
