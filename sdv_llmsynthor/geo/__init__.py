"""Populations for real places: every zone of a spec 1.1 geography, from a library of households."""

from sdv_llmsynthor.geo.engine import PopulationResult, region_library, synthesize_population

__all__ = ['PopulationResult', 'region_library', 'synthesize_population']
