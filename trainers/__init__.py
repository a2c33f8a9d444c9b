"""Re-export modules for nnU-Net's external trainer lookup (`nnUNet_extTrainer`); no class is defined here."""
