"""One job over several GPUs of a host: a group of worker processes, one per GPU, that run each job together.

The denoiser's sequence is split across the group with diffusers' own context parallelism (Ulysses: every GPU
attends with a share of the heads); rank 0 is an ordinary engine worker — it claims, reports progress, writes
the video and the run record — and the other ranks follow it job by job (`group`). `sequence` holds what is
done to a pipeline; `launcher` starts the group's processes and restarts the whole group when one dies.
"""
