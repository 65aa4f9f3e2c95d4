"""Tests against live processes: the gateway and simulator as real servers, fuzzed and scraped by real tools."""
