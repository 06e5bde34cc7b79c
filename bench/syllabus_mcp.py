"""A user's own MCP server, as a new user writes one (the ``mcp`` package's ``MCPServer``, formerly
FastMCP): a course syllabus behind one search tool, over stdio. The facts are made up, so a model
can answer questions about them only from the tool's results (``bench/syllabus_agents.py``).

    .venv/bin/python bench/syllabus_mcp.py [--log FILE]     # speaks MCP on stdin/stdout

``--log FILE`` appends each call's query to FILE (the bench counts the calls that ran).
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer

SYLLABUS = {
    "exams": "Midterm exam: Thursday 16 October, 18:30-20:00, in hall B-117. Final exam: Monday 15 December, "
             "09:00-12:00, in the Rotunda. Bring your student card; no notes allowed.",
    "grading": "Labs 35%, midterm 20%, final exam 30%, quizzes 10%, participation 5%. "
               "A grade of at least 52% is needed to pass.",
    "office hours": "Dr. Ilse Varga: Wednesdays 15:30-17:00 in room C-408. Teaching assistant Tomas Okafor: "
                    "Fridays 10:00-11:00 online (link on the course page).",
    "late policy": "Each student has 6 late days for the whole term. After those, a late lab loses 15% "
                   "per day, and nothing is accepted more than 3 days late.",
    "readings": "Week 1: chapter 2 (The Relational Model). Week 3: chapter 5 (B-Trees). "
                "Week 5: chapter 9 (Write-Ahead Logging). Week 7: chapter 12 (Query Optimisation).",
}

server = MCPServer("cs241-syllabus")
CALLS_LOG: str | None = None


@server.tool()
def search_syllabus(query: str) -> str:
    """Search the syllabus of CS 241 (Data Systems): exams, grading, office hours, late policy, readings.

    Args:
        query: What to look for, e.g. "midterm" or "office hours".
    """
    if CALLS_LOG:
        with open(CALLS_LOG, "a", encoding="utf-8") as fh:
            fh.write(query.replace("\n", " ") + "\n")
    words = [w for w in query.lower().replace("?", " ").split() if len(w) > 2]
    found = [f"{topic}: {text}" for topic, text in SYLLABUS.items()
             if any(w in topic or w in text.lower() for w in words)]
    return "\n".join(found or (f"{topic}: {text}" for topic, text in SYLLABUS.items()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", help="append each call's query to this file")
    CALLS_LOG = ap.parse_args().log
    server.run("stdio")
