"""Datasets: the data stage (``prepare``: fetch or copy, verify, ``manifest.json``) and the loaders.

registry   official files, checksums, sources and counts of CIFAR-10, PTB, WikiText-2, ImageNet
fetch      resumable verified downloads, verified copies, SHA256SUMS
formats    torch-free readers: CIFAR pickles, token streams, ImageFolder listings
manifest   manifest.json: write, read, summarize for meta.json and checkpoint keys
prepare    the `darts data` stage
loading    (seed, epoch)-reproducible DataLoaders, class-balanced caps
cifar, text, imagenet   the loaders: splits, transforms, datasets, corpora, BPTT
"""
