"""Tests of the GitHub workflows (.github/workflows) and the linter that checks them."""
