"""Helpers every test tier shares: one fake clock, one minimal agent, one operator launcher, one free port."""
