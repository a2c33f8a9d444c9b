#!/usr/bin/env bash
# Calibrate the synthetic phantom's difficulty (docs/studies/calibration.md): nnU-Net's own 2d trainer, CPU-sized plans,
# trained on 1, 5 and 20 phantom subjects, 3D Dice per structure on the ED and ES frames of 20 held-out subjects.
#
#   examples/calibrate_phantom.sh [WORK_DIR]        (default ./phantom_calibration; DEVICE=cuda to use a GPU)
#
# Every step is skipped when its output is there, and the benchmark skips finished runs, so the same command
# resumes. Results: WORK_DIR/nnUNet_results/Dataset601_Phantom/ssp_benchmark/{report.md,results.csv}.
set -euo pipefail

WORK=$(realpath -m "${1:-phantom_calibration}")
DATASET_ID=601
DATASET=Dataset${DATASET_ID}_Phantom
export nnUNet_raw=$WORK/nnUNet_raw nnUNet_preprocessed=$WORK/nnUNet_preprocessed nnUNet_results=$WORK/nnUNet_results
export nnUNet_def_n_proc=${nnUNet_def_n_proc:-2} nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-2}
export nnUNet_extTrainer="$(nnunet-ssp trainer-path)"
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"

step() {  # step NAME OUTPUT COMMAND...: run COMMAND unless OUTPUT exists, and print its wall time
    local name=$1 output=$2 start=$SECONDS
    shift 2
    if [ -e "$output" ]; then echo "== $name: $output exists, skipped"; return; fi
    echo "== $name: $*"
    "$@"
    echo "== $name: $((SECONDS - start)) s wall time"
}

# 44 subjects: 20 held out for testing, 4 shared validation subjects, 20 to draw the labeled subsets from.
step synth "$WORK/phantom/patient044" \
    nnunet-ssp synth -o "$WORK/phantom" -n 44 --seed 0 -np 2
step convert "$nnUNet_raw/$DATASET/dataset.json" \
    nnunet-ssp convert-acdc -i "$WORK/phantom" -d $DATASET_ID --name Phantom --test-subjects 20
step plan "$nnUNet_preprocessed/$DATASET/nnUNetPlansCPU.json" \
    nnunet-ssp plan-cpu -d $DATASET_ID --batch-size 12
# No SSP methods: only nnU-Net's baseline nnUNetTrainer_50epochs_20iters on each subset.
step benchmark "$nnUNet_results/$DATASET/ssp_benchmark/report.md" \
    nnunet-ssp benchmark -d $DATASET_ID --methods --subjects 1 5 20 --seeds 0 --val-subjects 4 \
    --finetune-epochs 50 --iters 20 -p nnUNetPlansCPU -device "${DEVICE:-cpu}"
cat "$nnUNet_results/$DATASET/ssp_benchmark/report.md"
