#!/usr/bin/env bash
# ACDC (https://www.creatis.insa-lyon.fr/Challenge/acdc/): training/ and testing/ with patientXXX folders.
# Usage: examples/acdc.sh /path/to/ACDC/database   (nnUNet_raw, nnUNet_preprocessed, nnUNet_results set)
set -euo pipefail
ACDC=$1
export nnUNet_extTrainer="$(nnunet-ssp trainer-path)"
nnunet-ssp convert-acdc -i "$ACDC" -d 27                     # ED/ES cases, subject-grouped folds, cines.json
nnUNetv2_plan_and_preprocess -d 27 -c 2d
nnunet-ssp prepare-unlabeled -d 27 -i "$ACDC/training"        # every frame of the training cines
nnUNetv2_train 27 2d all -tr nnUNetTrainerSSP_MIM            # pretraining (nnU-Net's 1000 epochs)
nnunet-ssp benchmark -d 27 --methods mim simclr pcl dino --subjects 1 2 5 10 --seeds 0 1 2
