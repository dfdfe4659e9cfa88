"""DEAP on Lineage's engine benchmark: OneMax, 100,000 organisms x 1,024 bits,
tournament selection (k = 2), bit-flip mutation at 1/L, no crossover.

Times generations exactly as DEAP's eaSimple loop runs them (select, clone,
mutate, evaluate the changed), after one evaluation of the founders. Prints
one JSON line: seconds per generation (median of the generations run), the
setup, and DEAP's version.

Usage: python deap_onemax.py [--population N] [--bits L] [--generations G]
"""

import argparse
import json
import random
import statistics
import time

from deap import base, creator, tools
import deap


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--bits", type=int, default=1024)
    parser.add_argument("--generations", type=int, default=2)
    args = parser.parse_args()

    random.seed(1)
    creator.create("FitnessMax", base.Fitness, weights=(1.0,))
    creator.create("Individual", list, fitness=creator.FitnessMax)
    toolbox = base.Toolbox()
    toolbox.register("attr_bool", random.randint, 0, 1)
    toolbox.register("individual", tools.initRepeat, creator.Individual, toolbox.attr_bool, args.bits)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("evaluate", lambda ind: (sum(ind),))
    toolbox.register("mutate", tools.mutFlipBit, indpb=1.0 / args.bits)
    toolbox.register("select", tools.selTournament, tournsize=2)

    population = toolbox.population(n=args.population)
    for ind, fit in zip(population, map(toolbox.evaluate, population)):
        ind.fitness.values = fit

    times = []
    for _ in range(args.generations):
        start = time.perf_counter()
        offspring = list(map(toolbox.clone, toolbox.select(population, len(population))))
        for mutant in offspring:
            toolbox.mutate(mutant)
            del mutant.fitness.values
        invalid = [ind for ind in offspring if not ind.fitness.valid]
        for ind, fit in zip(invalid, map(toolbox.evaluate, invalid)):
            ind.fitness.values = fit
        population[:] = offspring
        times.append(time.perf_counter() - start)

    best = max(ind.fitness.values[0] for ind in population)
    print(json.dumps({
        "peer": "deap",
        "version": deap.__version__,
        "population": args.population,
        "bits": args.bits,
        "generations": args.generations,
        "seconds_per_generation": statistics.median(times),
        "best": best,
    }))


if __name__ == "__main__":
    main()
