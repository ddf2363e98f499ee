"""The synthetic scene and what is made from it: a sensor source node, a bag."""

# The file `avstack sensors --synthetic --out DIR` writes at the end: the stamps it published (JSON list, ns).
STAMPS_FILE = 'stamps.json'
