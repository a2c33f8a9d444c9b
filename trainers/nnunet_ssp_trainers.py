"""Re-exports the nnunet-ssp trainers for nnU-Net's lookup; schedule variants resolve through `__getattr__`."""

from nnunet_ssp.finetune import nnUNetTrainerSSPFinetune  # noqa: F401
from nnunet_ssp.pretrain import (nnUNetTrainerSSP_DINO, nnUNetTrainerSSP_MIM, nnUNetTrainerSSP_PCL,  # noqa: F401
                                 nnUNetTrainerSSP_SimCLR)
from nnunet_ssp.variants import __getattr__  # noqa: F401
