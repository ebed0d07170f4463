"""A spec-exact P2PFILESHARINGPROJ peer built on Twisted."""
