"""The folder lock: a second holder is refused, in this process and from another; the lock ends with its holder."""

import os
import subprocess
import sys

import pytest

from nnunet_ssp.errors import InputError
from nnunet_ssp.locking import LOCK_FILE, folder_lock

HOLD = ("import sys; from nnunet_ssp.locking import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()\n")


def test_a_held_folder_is_refused_until_the_block_ends(tmp_path):
    folder = tmp_path / "out"
    with folder_lock(folder):
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(InputError) as error:
            with folder_lock(folder):  # another open file description: flock refuses it as it would another process
                pass
        assert str(error.value) == (f"{folder} is in use by another nnunet-ssp process (pid {os.getpid()}); wait "
                                    f"for it to end or stop it.")
    with folder_lock(folder):
        pass


def test_the_lock_of_another_process_ends_with_it(tmp_path):
    folder = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(InputError, match=f"in use by another nnunet-ssp process \\(pid {holder.pid}\\)"):
            with folder_lock(folder):
                pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(folder):  # the system released the killed holder's lock
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
