#!/usr/bin/env python3
"""The demo task (data/glorp/): "Is a banana a glorp?" with a made-up word: a glorp is anything
you can eat. The model has never seen the word, so zero-shot it guesses; the rule rests on a
feature it does know (food or not), so a short fine-tune can teach it, and the held-out split
(things never seen in training) shows whether it generalised. Multiple choice in lomo's generic
form, {"prompt", "choices": ["Yes", "No"], "label"}. Standard library only; the output is
committed, this script documents how it was made.

usage: make_glorp_data.py OUT_DIR [--heldout-fraction 0.25] [--seed 0]
"""
import argparse
import json
import os
import random

FOOD = """apple banana cherry grape lemon mango orange peach pear plum strawberry blueberry raspberry
pineapple watermelon melon kiwi apricot coconut avocado tomato potato carrot onion garlic cucumber
lettuce cabbage broccoli spinach pumpkin mushroom pea bean lentil rice bread cake cookie biscuit
muffin pancake waffle sandwich burger pizza pasta noodle dumpling sausage bacon ham steak chicken
egg cheese butter yogurt cream chocolate candy honey jam donut pie croissant bagel taco burrito
soup salad omelette popcorn pretzel cracker almond walnut peanut cashew hazelnut olive radish celery
zucchini eggplant beetroot turnip fig date lime grapefruit papaya pomegranate sushi cereal porridge""".split()
OTHER = """hammer screwdriver wrench saw drill ladder shovel rake bucket nail bolt chair table sofa bed
desk shelf cupboard lamp mirror carpet curtain pillow blanket car truck bicycle train airplane boat
bus helicopter tractor scooter shirt jacket sock shoe hat scarf glove belt umbrella wallet key phone
laptop keyboard mouse monitor printer camera radio television clock watch pencil pen eraser ruler
notebook envelope stamp brick stone rock sand cement glass bottle plate fork spoon knife cup kettle
candle rope chain needle thread button zipper coin ticket map compass magnet battery cable tire""".split()

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--heldout-fraction", type=float, default=0.25)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
rng = random.Random(a.seed)
items = [(w, 0) for w in FOOD] + [(w, 1) for w in OTHER]  # label 0 = "Yes" (edible)
rng.shuffle(items)
k = int(len(items) * a.heldout_fraction)
os.makedirs(a.out, exist_ok=True)
for name, part in [("heldout", items[:k]), ("train", items[k:])]:
    with open(os.path.join(a.out, name + ".jsonl"), "w") as f:
        for w, label in part:
            article = "an" if w[0] in "aeiou" else "a"
            f.write(json.dumps({"prompt": f"Is {article} {w} a glorp?\nAnswer: ", "choices": ["Yes", "No"],
                                "label": label}) + "\n")
