"""Public-domain excerpts for the book corpus in ``tests/fixtures/books/``.

Every text here is in the public domain: short excerpts of works published
before 1929 by authors who died before 1931 (named beside each constant), or
a few sentences written for this corpus and dedicated to the public domain
(CC0): the technical book, the publisher's pages and the notes.  A list of
strings is a list of paragraphs; a tuple of lines is a stanza of verse.
"""

from __future__ import annotations

# Arthur Conan Doyle, "A Scandal in Bohemia" (1891), parts I and II, opening paragraphs.
SCANDAL_I = [
    "To Sherlock Holmes she is always the woman. I have seldom heard him mention her under "
    "any other name. In his eyes she eclipses and predominates the whole of her sex. It was "
    "not that he felt any emotion akin to love for Irene Adler. All emotions, and that one "
    "particularly, were abhorrent to his cold, precise but admirably balanced mind.",
    "I had seen little of Holmes lately. My marriage had drifted us away from each other. My "
    "own complete happiness, and the home-centred interests which rise up around the man who "
    "first finds himself master of his own establishment, were sufficient to absorb all my "
    "attention, while Holmes, who loathed every form of society with his whole Bohemian soul, "
    "remained in our lodgings in Baker Street, buried among his old books.",
    "\u201cWedlock suits you,\u201d he remarked. \u201cI think, Watson, that you have put on "
    "seven and a half pounds since I saw you.\u201d",
    "\u201cSeven!\u201d I answered.",
]
SCANDAL_II = [
    "At three o\u2019clock precisely I was at Baker Street, but Holmes had not yet returned. "
    "The landlady informed me that he had left the house shortly after eight o\u2019clock in "
    "the morning.",
    "It was close upon four before the door opened, and a drunken-looking groom, ill-kempt and "
    "side-whiskered, with an inflamed face and disreputable clothes, walked into the room. "
    "Accustomed as I was to my friend\u2019s amazing powers in the use of disguises, I had to "
    "look three times before I was certain that it was indeed he.",
]
# Written for this corpus (CC0): a footnote on the first part.
HOLMES_NOTE = "Irene Adler appears in this one story only, and is remembered in all the others."
# Arthur Conan Doyle, "The Red-Headed League" (1891), opening.
RED_HEADED = [
    "I had called upon my friend, Mr. Sherlock Holmes, one day in the autumn of last year and "
    "found him in deep conversation with a very stout, florid-faced, elderly gentleman with "
    "fiery red hair.",
    "\u201cYou could not possibly have come at a better time, my dear Watson,\u201d he said "
    "cordially.",
]

# Edgar Allan Poe, "The Tell-Tale Heart" (1843), opening.
TELL_TALE = [
    "True!\u2014nervous\u2014very, very dreadfully nervous I had been and am; but why will you "
    "say that I am mad? The disease had sharpened my senses\u2014not destroyed\u2014not dulled "
    "them. Above all was the sense of hearing acute. I heard all things in the heaven and in "
    "the earth. I heard many things in hell. How, then, am I mad? Hearken! and observe how "
    "healthily\u2014how calmly I can tell you the whole story.",
    "It is impossible to say how first the idea entered my brain; but once conceived, it "
    "haunted me day and night. Object there was none. Passion there was none. I loved the old "
    "man. He had never wronged me. He had never given me insult. For his gold I had no desire.",
]
# Edgar Allan Poe, "The Cask of Amontillado" (1846), opening.
CASK = [
    "The thousand injuries of Fortunato I had borne as I best could, but when he ventured upon "
    "insult I vowed revenge. You, who so well know the nature of my soul, will not suppose, "
    "however, that I gave utterance to a threat. At length I would be avenged; this was a "
    "point definitely settled\u2014but the very definitiveness with which it was resolved "
    "precluded the idea of risk.",
    "It must be understood that neither by word nor deed had I given Fortunato cause to doubt "
    "my good will. I continued, as was my wont, to smile in his face, and he did not perceive "
    "that my smile now was at the thought of his immolation.",
]
# Edgar Allan Poe, "The Raven" (1845), stanzas 1 to 3.
RAVEN = [
    (
        "Once upon a midnight dreary, while I pondered, weak and weary,",
        "Over many a quaint and curious volume of forgotten lore\u2014",
        "While I nodded, nearly napping, suddenly there came a tapping,",
        "As of some one gently rapping, rapping at my chamber door.",
        "\u201c\u2019Tis some visitor,\u201d I muttered, \u201ctapping at my chamber door\u2014",
        "Only this and nothing more.\u201d",
    ),
    (
        "Ah, distinctly I remember it was in the bleak December;",
        "And each separate dying ember wrought its ghost upon the floor.",
        "Eagerly I wished the morrow;\u2014vainly I had sought to borrow",
        "From my books surcease of sorrow\u2014sorrow for the lost Lenore\u2014",
        "For the rare and radiant maiden whom the angels name Lenore\u2014",
        "Nameless here for evermore.",
    ),
    (
        "And the silken, sad, uncertain rustling of each purple curtain",
        "Thrilled me\u2014filled me with fantastic terrors never felt before;",
        "So that now, to still the beating of my heart, I stood repeating",
        "\u201c\u2019Tis some visitor entreating entrance at my chamber door\u2014",
        "Some late visitor entreating entrance at my chamber door;\u2014",
        "This it is and nothing more.\u201d",
    ),
]
# Edgar Allan Poe, "Annabel Lee" (1849), first stanza.
ANNABEL_LEE = [
    (
        "It was many and many a year ago,",
        "In a kingdom by the sea,",
        "That a maiden there lived whom you may know",
        "By the name of Annabel Lee;",
        "And this maiden she lived with no other thought",
        "Than to love and be loved by me.",
    ),
]
# Edgar Allan Poe, "The Fall of the House of Usher" (1839), opening.
USHER = [
    "During the whole of a dull, dark, and soundless day in the autumn of the year, when the "
    "clouds hung oppressively low in the heavens, I had been passing alone, on horseback, "
    "through a singularly dreary tract of country; and at length found myself, as the shades "
    "of the evening drew on, within view of the melancholy House of Usher.",
    "I know not how it was\u2014but, with the first glimpse of the building, a sense of "
    "insufferable gloom pervaded my spirit. I say insufferable; for the feeling was unrelieved "
    "by any of that half-pleasurable, because poetic, sentiment, with which the mind usually "
    "receives even the sternest natural images of the desolate or terrible.",
]
# Edgar Allan Poe, "The Masque of the Red Death" (1842), opening.
MASQUE = [
    "The \u201cRed Death\u201d had long devastated the country. No pestilence had ever been so "
    "fatal, or so hideous. Blood was its Avatar and its seal\u2014the redness and the horror "
    "of blood. There were sharp pains, and sudden dizziness, and then profuse bleeding at the "
    "pores, with dissolution.",
    "But the Prince Prospero was happy and dauntless and sagacious. When his dominions were "
    "half depopulated, he summoned to his presence a thousand hale and light-hearted friends "
    "from among the knights and dames of his court, and with these retired to the deep "
    "seclusion of one of his castellated abbeys.",
]

# Arthur Conan Doyle, "The Hound of the Baskervilles" (1902), chapters 1 and 2, openings.
HOUND_1 = [
    "Mr. Sherlock Holmes, who was usually very late in the mornings, save upon those not "
    "infrequent occasions when he was up all night, was seated at the breakfast table. I "
    "stood upon the hearth-rug and picked up the stick which our visitor had left behind him "
    "the night before.",
    "It was a fine, thick piece of wood, bulbous-headed, of the sort which is known as a "
    "\u201cPenang lawyer.\u201d Just under the head was a broad silver band nearly an inch "
    "across.",
    "\u201cWell, Watson, what do you make of it?\u201d",
]
HOUND_2 = [
    "\u201cI have in my pocket a manuscript,\u201d said Dr. James Mortimer.",
    "\u201cI observed it as you entered the room,\u201d said Holmes.",
    "\u201cIt is an old manuscript.\u201d",
    "\u201cEarly eighteenth century, unless it is a forgery.\u201d",
]

# Charles Dickens, "A Tale of Two Cities" (1859), Book the First, chapters I to III.
TWO_CITIES_1 = [
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was "
    "the season of Light, it was the season of Darkness, it was the spring of hope, it was the "
    "winter of despair.",
    "There were a king with a large jaw and a queen with a plain face, on the throne of "
    "England; there were a king with a large jaw and a queen with a fair face, on the throne "
    "of France.",
    "It was the year of Our Lord one thousand seven hundred and seventy-five.",
]
TWO_CITIES_2 = [
    "It was the Dover road that lay, on a Friday night late in November, before the first of "
    "the persons with whom this history has business. The Dover road lay, as to him, beyond "
    "the Dover mail, as it lumbered up Shooter\u2019s Hill.",
]
TWO_CITIES_3 = [
    "A wonderful fact to reflect upon, that every human creature is constituted to be that "
    "profound secret and mystery to every other.",
]

# Arthur Conan Doyle, "A Study in Scarlet" (1887): Part I chapters I and II, Part II chapter I.
SCARLET_1_1 = [
    "In the year 1878 I took my degree of Doctor of Medicine of the University of London, and "
    "proceeded to Netley to go through the course prescribed for surgeons in the army. Having "
    "completed my studies there, I was duly attached to the Fifth Northumberland Fusiliers as "
    "Assistant Surgeon.",
    "The campaign brought honours and promotion to many, but for me it had nothing but "
    "misfortune and disaster. I was removed from my brigade and attached to the Berkshires, "
    "with whom I served at the fatal battle of Maiwand.",
    "\u201cYou have been in Afghanistan, I perceive.\u201d",
]
SCARLET_1_2 = [
    "We met next day as he had arranged, and inspected the rooms at No. 221B, Baker Street, "
    "of which he had spoken at our meeting. They consisted of a couple of comfortable "
    "bed-rooms and a single large airy sitting-room, cheerfully furnished, and illuminated by "
    "two broad windows.",
]
SCARLET_2_1 = [
    "In the central portion of the great North American Continent there lies an arid and "
    "repulsive desert, which for many a long year served as a barrier against the advance of "
    "civilisation.",
]
# Written for this corpus (CC0): the body of the one endnote.
SCARLET_NOTE = "Maiwand lies west of Kandahar; the battle there was fought in the summer of 1880."

# Jane Austen, "Pride and Prejudice" (1813), chapters I to III, openings.
PRIDE_1 = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune "
    "must be in want of a wife.",
    "However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that "
    "he is considered as the rightful property of some one or other of their daughters.",
    "\u201cMy dear Mr. Bennet,\u201d said his lady to him one day, \u201chave you heard that "
    "Netherfield Park is let at last?\u201d",
    "Mr. Bennet replied that he had not.",
]
PRIDE_2 = [
    "Mr. Bennet was among the earliest of those who waited on Mr. Bingley. He had always "
    "intended to visit him, though to the last always assuring his wife that he should not "
    "go; and till the evening after the visit was paid she had no knowledge of it.",
    "\u201cI hope Mr. Bingley will like it, Lizzy.\u201d",
]
PRIDE_3 = [
    "Not all that Mrs. Bennet, however, with the assistance of her five daughters, could ask "
    "on the subject, was sufficient to draw from her husband any satisfactory description of "
    "Mr. Bingley.",
]

# Walt Whitman, "Leaves of Grass" (1891\u201392 edition): three poems, opening lines.
ONES_SELF = [
    (
        "One\u2019s-Self I sing, a simple separate person,",
        "Yet utter the word Democratic, the word En-Masse.",
    ),
]
AMERICA_SINGING = [
    (
        "I hear America singing, the varied carols I hear,",
        "Those of mechanics, each one singing his as it should be blithe and strong,",
        "The carpenter singing his as he measures his plank or beam,",
    ),
]
O_CAPTAIN = [
    (
        "O Captain! my Captain! our fearful trip is done,",
        "The ship has weather\u2019d every rack, the prize we sought is won,",
        "The port is near, the bells I hear, the people all exulting,",
        "While follow eyes the steady keel, the vessel grim and daring;",
        "But O heart! heart! heart!",
        "O the bleeding drops of red,",
        "Where on the deck my Captain lies,",
        "Fallen cold and dead.",
    ),
]
O_CAPTAIN_2 = [
    (
        "O Captain! my Captain! rise up and hear the bells;",
        "Rise up\u2014for you the flag is flung\u2014for you the bugle trills,",
        "For you bouquets and ribbon\u2019d wreaths\u2014for you the shores a-crowding,",
        "For you they call, the swaying mass, their eager faces turning;",
    ),
]

# Charles Dickens, "A Christmas Carol" (1843): the preface, Staves I to III, openings.
CAROL_PREFACE = [
    "I have endeavoured in this Ghostly little book, to raise the Ghost of an Idea, which "
    "shall not put my readers out of humour with themselves, with each other, with the "
    "season, or with me. May it haunt their houses pleasantly, and no one wish to lay it.",
    "Their faithful Friend and Servant, C. D.",
]
CAROL_1 = [
    "Marley was dead: to begin with. There is no doubt whatever about that. The register of "
    "his burial was signed by the clergyman, the clerk, the undertaker, and the chief "
    "mourner. Scrooge signed it: and Scrooge\u2019s name was good upon \u2019Change, for "
    "anything he chose to put his hand to.",
    "Old Marley was as dead as a door-nail.",
]
CAROL_2 = [
    "When Scrooge awoke, it was so dark, that looking out of bed, he could scarcely "
    "distinguish the transparent window from the opaque walls of his chamber.",
]
CAROL_3 = [
    "Awaking in the middle of a prodigiously tough snore, and sitting up in bed to get his "
    "thoughts together, Scrooge had no occasion to be told that the bell was again upon the "
    "stroke of One.",
]

# Written for this corpus (CC0): a short technical book for the DocBook fixture.
TECH_PREFACE = [
    "This little guide was first drafted in 2012. Copyright 2012 is printed in the first "
    "edition, and the preface keeps that line because readers asked where it came from.",
    "It explains how a reader program finds the chapters of an electronic book.",
]
TECH_PACKAGE_INTRO = [
    "Every book starts with a container file that names its package document.",
]
TECH_MANIFEST = [
    "The manifest lists every file of the book, each with an identifier and a media type.",
]
TECH_SPINE = [
    "The spine gives the reading order. A navigation link may point into the middle of a "
    "file, so a reader drops the fragment before it looks the file up: it keeps "
    "href.split('#')[0] of every link, as in this listing:",
]
TECH_CODE = "path = href.split('#')[0]\nitem = manifest[path]"
TECH_NOTE = "A fragment names an element by its id attribute."
TECH_NAV_INTRO = [
    "The navigation document is an ordinary page with a list of links.",
]
TECH_NESTED = [
    "Entries may nest: a chapter lists its sections beneath it, and those are not chapters.",
]
TECH_LANDMARKS = [
    "Landmarks point at the start of the body, the table of contents and the cover.",
]
TECH_READING = [
    "The specification is the best further reading. A printed companion to this guide is "
    "catalogued as ISBN 978-0-00-000000-2 in the national library.",
    "Libraries lend it free of charge.",
]

# Written for this corpus (CC0): a publisher's pages and a transcriber's note.
ADVERTISEMENT = [
    "Also available from Lantern Street Press:",
    "Oliver Twist. Great Expectations. The Pickwick Papers.",
    "Ask for them at every good bookseller.",
]
TRANSCRIBER_NOTE = [
    "Obvious printing errors have been corrected silently; the spelling of the original "
    "edition is otherwise kept.",
]
