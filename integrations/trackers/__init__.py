"""Trackers: JIRA issues for tests that keep failing, TestRail results per case."""
