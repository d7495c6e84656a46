"""A loopback simulator of Alpaca and Alpha Vantage serving a deterministic synthetic market."""

from pollen.local.simulator.app import SimulatorConfig
from pollen.local.simulator.market import Market
from pollen.local.simulator.server import Simulator, SimulatorProcess

__all__ = ["Market", "Simulator", "SimulatorConfig", "SimulatorProcess"]
