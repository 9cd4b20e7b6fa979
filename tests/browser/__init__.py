"""Chromium + playwright tests of the pages in static/."""
