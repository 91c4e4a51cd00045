"""Helpers shared by the nodetool command modules."""

from . import util


def size(n, v):
    return util.stringify_file_size(v, n.profile.binary_units)


# -- commands -----------------------------------------------------------------------------------
