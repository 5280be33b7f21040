"""The Reddit-compatible sandbox server (real HTTP on loopback) that unmodified praw talks to."""
