"""Loopback stand-ins for AWS services that moto does not provide, reusable by any test tier."""
