#!/usr/bin/env bash
# The whole workflow on a small synthetic phantom, with nothing but nnU-Net's commands and nnunet-ssp's data tools.
# 10 min on 2 CPU cores shared with other jobs (6.3 CPU-min). Usage: examples/phantom_walkthrough.sh [WORKDIR]
set -euo pipefail
W=$(realpath "${1:-phantom_walkthrough}")
export nnUNet_raw=$W/nnUNet_raw nnUNet_preprocessed=$W/nnUNet_preprocessed nnUNet_results=$W/nnUNet_results
export nnUNet_extTrainer="$(nnunet-ssp trainer-path)"
export nnUNet_def_n_proc=2 nnUNet_n_proc_DA=2
D=701

# data: 12 phantom subjects (4 held out for testing), nnU-Net raw dataset, CPU-sized plans, the unlabeled pool
nnunet-ssp synth -o "$W/cines" -n 12 --seed 0 --size 64 -np 2
nnunet-ssp convert-acdc -i "$W/cines" -d $D --name Walkthrough --test-subjects 4
nnunet-ssp plan-cpu -d $D -np 2
nnunet-ssp prepare-unlabeled -d $D -i "$W/cines" -p nnUNetPlansCPU -np 2

# pretrain MIM on every frame of the training cines, then fine-tune on fold 0 from its weights
nnUNetv2_train $D 2d all -p nnUNetPlansCPU -tr nnUNetTrainerSSP_MIM_5epochs_25iters -device cpu
CKPT=$nnUNet_results/Dataset${D}_Walkthrough/nnUNetTrainerSSP_MIM_5epochs_25iters__nnUNetPlansCPU__2d/fold_all/checkpoint_final.pth
nnUNetv2_train $D 2d 0 -p nnUNetPlansCPU -tr nnUNetTrainerSSPFinetune_10epochs_25iters -device cpu -pretrained_weights "$CKPT"

# predict the held-out subjects and evaluate 3D Dice per structure with nnU-Net's tools
MODEL=$nnUNet_results/Dataset${D}_Walkthrough/nnUNetTrainerSSPFinetune_10epochs_25iters__nnUNetPlansCPU__2d
nnUNetv2_predict -i "$nnUNet_raw/Dataset${D}_Walkthrough/imagesTs" -o "$W/predictions" -d $D -c 2d -f 0 \
    -p nnUNetPlansCPU -tr nnUNetTrainerSSPFinetune_10epochs_25iters -chk checkpoint_final.pth -device cpu -npp 2 -nps 2
nnUNetv2_evaluate_folder "$nnUNet_raw/Dataset${D}_Walkthrough/labelsTs" "$W/predictions" \
    -djfile "$MODEL/dataset.json" -pfile "$MODEL/plans.json" -np 2
python -c "import json, sys; s = json.load(open(sys.argv[1])); print({k: round(v['Dice'], 3) for k, v in s['mean'].items()}, 'mean', round(s['foreground_mean']['Dice'], 3))" "$W/predictions/summary.json"
