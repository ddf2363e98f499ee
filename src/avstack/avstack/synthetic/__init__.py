"""The synthetic scene and what is made from it: a sensor source node, a bag."""
