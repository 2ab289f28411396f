"""Tests of workbench.codegen."""
