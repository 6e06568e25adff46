#!/usr/bin/env python3
"""Implements: the generator of data/corpus.txt, zinf's bundled training corpus.

The corpus must ship with the source (no downloads), be free of copyright
questions, and be varied enough that a byte-level model's loss falls visibly
within a hundred steps. It is made of three parts, all written for zinf or in
the public domain:
  * short fables and notes written for this project (the PASSAGES below),
  * two public-domain American texts (the Gettysburg Address, 1863, and the
    Preamble of the US Constitution, 1787),
  * procedurally generated prose: small stories built from a seeded grammar
    of people, places, weather, work and dialogue.
Deterministic: the same script writes the same bytes (seeded random.Random).

Usage: python3 tools/make_corpus.py [--bytes N] [--out data/corpus.txt]
"""
import argparse
import random

PASSAGES = [
    """The Lighthouse Keeper and the Fog

There was once a keeper who lived alone at the end of a long stone pier. Every evening he climbed the
ninety steps of his tower, trimmed the wick, polished the glass, and watched the lamp turn. Ships passed
in the dark and he never saw their crews, but he knew them by their lights: the red of the ferry, the
green of the fishing boats, the white mast lamp of the grain barge that came twice a month.
One winter a fog came in from the sea and did not lift for nine days. The light could not reach past the
breakwater. On the third night the keeper took the old brass bell from the storeroom, hung it by the door,
and rang it every minute until dawn. He did the same the next night, and the next. When the fog finally
lifted, a fisherman walked the length of the pier with a basket of bread and a jar of honey. "We could not
see your light," he said, "but we heard you all the way in." """,
    """The Miller's Three Sons

A miller had three sons and one mill. The eldest wanted the mill, the second wanted the donkey, and the
youngest wanted nothing but to learn how the wheel was made. When the miller grew old he gave the mill to
the eldest and the donkey to the second. To the youngest he gave a chisel, a plane and a coil of good rope.
The mill burned in a dry summer and the donkey wandered off in the spring floods. The youngest son built a
new wheel with his chisel and plane, hung it with his rope, and ground flour for all three of them. The
moral, the old women of the valley say, is that a trade travels further than a gift.""",
    """Notes on Training Small Models

A small model learns the shape of its data before it learns the meaning. First it learns which letters are
common, then which letters follow which, then whole words, and only much later anything like grammar. When
the loss falls quickly in the first hundred steps, the model is learning spelling. When it falls slowly for
thousands of steps afterwards, it is learning everything else. Keep the learning rate modest, clip the
gradients, save checkpoints often, and never trust a single run: change the seed and run again.""",
    """The Fox and the Ferryman

A fox came to a river and asked the ferryman to carry him across. "What will you pay?" asked the ferryman.
"I will tell you where the geese sleep," said the fox. The ferryman laughed and said that he kept no geese
and cared nothing for them. "Then I will tell you where the river is shallow," said the fox, "so that you
need never row again." The ferryman stopped laughing, and rowed the fox across, and the fox ran into the
woods without another word. The next morning the ferryman waded into the river where the fox had pointed,
and it was deep, and he was wet to the neck. Some bargains are paid for with the thing that is sold.""",
    """A Letter Home

Dear sister, the harvest is in and the barn is full. We had rain in the second week, which worried father,
but the wind came round to the north and dried the fields in two days. The new calf is strong. Mother says
to tell you that the apple tree by the gate has fruit for the first time since the storm. I have been
reading the books you sent, one chapter each night, and I have finished the one about the river journey.
Write soon, and tell us about the city, the trains, and whether the bread there is as good as ours.""",
]

PUBLIC_DOMAIN = [
    """Address delivered at the dedication of the Cemetery at Gettysburg, Abraham Lincoln, November 19, 1863

Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in
Liberty, and dedicated to the proposition that all men are created equal.
Now we are engaged in a great civil war, testing whether that nation, or any nation so conceived and so
dedicated, can long endure. We are met on a great battle-field of that war. We have come to dedicate a
portion of that field, as a final resting place for those who here gave their lives that that nation might
live. It is altogether fitting and proper that we should do this.
But, in a larger sense, we can not dedicate -- we can not consecrate -- we can not hallow -- this ground.
The brave men, living and dead, who struggled here, have consecrated it, far above our poor power to add or
detract. The world will little note, nor long remember what we say here, but it can never forget what they
did here. It is for us the living, rather, to be dedicated here to the unfinished work which they who fought
here have thus far so nobly advanced. It is rather for us to be here dedicated to the great task remaining
before us -- that from these honored dead we take increased devotion to that cause for which they gave the
last full measure of devotion -- that we here highly resolve that these dead shall not have died in vain --
that this nation, under God, shall have a new birth of freedom -- and that government of the people, by the
people, for the people, shall not perish from the earth.""",
    """Preamble to the Constitution of the United States, 1787

We the People of the United States, in Order to form a more perfect Union, establish Justice, insure
domestic Tranquility, provide for the common defence, promote the general Welfare, and secure the Blessings
of Liberty to ourselves and our Posterity, do ordain and establish this Constitution for the United States
of America.""",
]

NAMES = ["Anna", "Tomas", "Mira", "Jonah", "Ines", "Pavel", "Lena", "Oscar", "Ruth", "Felix", "Nora", "Emil",
         "Clara", "Hugo", "Vera", "Simon", "Ada", "Leo", "Marta", "Jakob", "Iris", "Karl", "Elsa", "Noah"]
JOBS = ["baker", "carpenter", "teacher", "fisherman", "weaver", "doctor", "sailor", "farmer", "clockmaker",
        "painter", "miller", "gardener", "blacksmith", "librarian", "shepherd", "potter"]
PLACES = ["the village by the river", "the old harbour town", "a farm at the edge of the forest",
          "the city on the hill", "a cottage near the mountains", "the island across the bay",
          "the market square", "a house beside the railway", "the valley of the seven bridges"]
WEATHER = ["The morning was cold and clear", "Rain fell all through the night", "A warm wind blew from the south",
           "Snow had covered the roads", "The sun rose over a quiet sea", "Thick fog hung over the fields",
           "It was the hottest day of the summer", "Autumn leaves drifted across the path"]
OBJECTS = ["a wooden box", "an old map", "a silver key", "a letter with no name", "a broken lantern",
           "a basket of apples", "a small brown dog", "a book of songs", "a pair of boots", "a compass",
           "a loaf of bread", "a blue scarf", "a jar of honey", "a bundle of rope"]
FEELINGS = ["glad", "worried", "curious", "tired", "surprised", "proud", "afraid", "hopeful", "puzzled"]
VERBS = ["found", "carried", "mended", "lost", "gave away", "painted", "sold", "hid", "opened", "buried"]
TIMES = ["At noon", "Before dawn", "In the evening", "After supper", "Late that night", "On the next day",
         "A week later", "By the end of the month", "When the bells rang"]
SAYINGS = ["We will need more than luck", "Nothing good comes from hurrying", "Let us try once more",
           "I have seen this before", "The road is longer than it looks", "Bring the lamp, it is getting dark",
           "Every knot can be untied", "Tomorrow the river will be lower", "Count them again, slowly"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty"]


def story(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    job_a, job_b = rng.sample(JOBS, 2)
    place = rng.choice(PLACES)
    obj, obj2 = rng.sample(OBJECTS, 2)
    lines = [
        f"{rng.choice(WEATHER)} in {place}.",
        f"{a} the {job_a} {rng.choice(VERBS)} {obj} and felt {rng.choice(FEELINGS)}.",
        f"{rng.choice(TIMES)}, {a} walked to the house of {b}, who was a {job_b}.",
        f'"{rng.choice(SAYINGS)}," said {b}.',
        f'"{rng.choice(SAYINGS)}," answered {a}, and showed {b} {obj}.',
        f"Together they {rng.choice(VERBS)} {obj2} and counted {rng.choice(NUMBERS)} {rng.choice(['coins', 'birds', 'boats', 'stars', 'steps', 'trees'])}.",
        f"{rng.choice(TIMES)}, {b} was {rng.choice(FEELINGS)}, but {a} was {rng.choice(FEELINGS)}.",
    ]
    if rng.random() < 0.5:
        lines.append(f"In the end the {job_a} and the {job_b} went home, and {obj} stayed in {place}.")
    else:
        lines.append(f"Nobody in {place} ever learned what happened to {obj}.")
    return " ".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", type=int, default=400_000, help="approximate size of the corpus")
    ap.add_argument("--out", default="data/corpus.txt")
    ap.add_argument("--seed", type=int, default=20240520)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    parts = list(PASSAGES) + list(PUBLIC_DOMAIN)
    size = sum(len(p) + 2 for p in parts)
    i = 0
    while size < args.bytes:
        text = story(rng)
        # Interleave the fixed passages so every region of the file has some real prose.
        if i % 40 == 39:
            text = rng.choice(PASSAGES + PUBLIC_DOMAIN)
        parts.append(text)
        size += len(text) + 2
        i += 1
    with open(args.out, "w", encoding="ascii") as f:
        f.write("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
