#!/usr/bin/env bash
# M&Ms-1 (https://www.ub.edu/mnms/): <id>/<id>_sa.nii.gz, <id>_sa_gt.nii.gz and the info CSV with ED, ES and vendor.
# Usage: examples/mnms.sh /path/to/OpenDataset /path/to/211230_M&Ms_Dataset_information_diagnosis_opendataset.csv
set -euo pipefail
MNMS=$1 CSV=$2
export nnUNet_extTrainer="$(nnunet-ssp trainer-path)"
nnunet-ssp convert-mnms -i "$MNMS" --csv "$CSV" -d 114       # labels LV 1, MYO 2, RV 3 written into dataset.json
nnUNetv2_plan_and_preprocess -d 114 -c 2d
nnunet-ssp prepare-unlabeled -d 114 -i "$MNMS/Training"
nnUNetv2_train 114 2d all -tr nnUNetTrainerSSP_MIM
nnunet-ssp benchmark -d 114 --methods mim pcl --subjects 2 5 10 --seeds 0 1 2
