"""One load profile run as shards: worker processes on this machine, or tasks on a cluster.

The flow: ``plan`` splits the profile, ``runner`` runs one shard's engine and streams its closed
windows (``wire``), ``coordinator`` starts the shards on one clock, merges their windows live
(``merged``) for progress, abort-on-fail and faults, and folds everything into one ``LoadResult``;
``local`` starts the shards as processes of this machine.
"""
