"""HUD's ``hud.agents`` import path: ``from workbench.agents import create_agent``."""

from workbench.agent import Agent, create_agent

__all__ = ["Agent", "create_agent"]
