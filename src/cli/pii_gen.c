/* pii_gen.c — labelled text for the PII detector (see pii_gen.h). */
#include "cli/pii_gen.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/jsonw.h"
#include "base/mem.h"

#define GEN_MAX_SPANS 32
#define GEN_MAX_TEXT  4096 /* bytes of one record */
#define GEN_SYNTH     16   /* made-up names alive at once (one record uses a few) */
#define FREE_LINES    5    /* the last own sentences: free sentences composed at random */

/* ================================================================== word lists */

/* One census list: names in title case, most frequent first. */
typedef struct names {
    char **v;
    size_t n;
} names_t;

struct pii_gen {
    uint64_t rng;
    names_t first[2], last; /* female, male; surnames */
    buf_t text;
    size_t cps; /* code points in text */
    struct {
        const char *type;
        size_t st, en;   /* code points */
        size_t bst, ben; /* bytes */
    } span[GEN_MAX_SPANS];
    int nspan;
    char synth[GEN_SYNTH][48]; /* names made up by name_of, used round robin */
    unsigned nsynth;
    int made_pct, blend_pct, own_pct; /* shares of made-up names and own sentences */
    int swap_pct, swap_name_pct;      /* capitalised literal words swapped; of them, for a name */
    int swap_open_pct;                /* a sentence's first word swapped */
    int vocab_w;                      /* weight of common words among decoys (of 7 + it) */
    int title_pct;                    /* work titles made of common words */
    int opener_vocab_pct;             /* swapped sentence openers that are common words */
    int open_min, swap_open_name_pct; /* shortest opening word swapped; of them, for a name */
    int city_part_pct;                /* towns with a particle ("Villa del Monte") */
    int firm_list_pct;                /* firms of surnames in the shape "A, B and C" */
    bool lower;                       /* this record goes out in lower case */
    const char *unknown;              /* the first placeholder fill did not know, */
    size_t unknown_n;                 /* and its length (in the template's text) */
    int lower_pct;                    /* records in lower case */
    int swap_full_pct;                /* swapped-in names that are full names */
    int ctx_pct;                      /* lower-case template words swapped for common words */
    int free_pct;                     /* records of free sentences (the last FREE_LINES own) */
    int free_name_pct;                /* of their sentence-initial phrases, names */
    char place[96];                   /* a country drawn by country_of */
    const char **line;                /* template lines */
    size_t *llen, nl;
};
typedef struct pii_gen gen_t;

static const char *const titles[] = {"Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Miss", "Mr", "Dr"};
static const char *const street_sfx[] = {
    "Street", "St.",   "Avenue",    "Ave",     "Road",  "Rd.",      "Lane",    "Drive", "Court",
    "Way",    "Place", "Boulevard", "Terrace", "Close", "Crescent", "Parkway", "Row"};
static const char *const street_words[] = {"Oak",   "Maple",  "Cedar",    "Park",    "Hill",
                                           "Lake",  "Church", "Mill",     "River",   "Elm",
                                           "Pine",  "Sunset", "Highland", "Spring",  "Forest",
                                           "Union", "Market", "Bridge",   "Station", "Orchard"};
static const char *const eu_streets[] = {"Koskikatu",   "Hauptstraße", "Mellemvej",   "Skogstien",
                                         "Dalbraut",    "Kirkegata",   "Rua Augusta", "Via Roma",
                                         "Calle Mayor", "ulica Długa", "Lindenweg",   "Storgatan"};
static const char *const cities[] = {
    "Springfield", "Toronto",   "Berlin",       "Lyon",      "Austin",      "New York",
    "Los Angeles", "Chicago",   "Houston",      "Phoenix",   "San Diego",   "Dallas",
    "Seattle",     "Boston",    "Miami",        "London",    "Paris",       "Madrid",
    "Rome",        "Amsterdam", "Vienna",       "Prague",    "Warsaw",      "Stockholm",
    "Copenhagen",  "Lisbon",    "Athens",       "Istanbul",  "Cairo",       "Lagos",
    "Nairobi",     "Mumbai",    "Delhi",        "Beijing",   "Shanghai",    "Tokyo",
    "Seoul",       "Sydney",    "Melbourne",    "Auckland",  "Mexico City", "Bogota",
    "Lima",        "Santiago",  "Buenos Aires", "Sao Paulo", "Montreal",    "Vancouver",
    "Manchester",  "Glasgow",   "Cardiff",      "Belfast",   "Leeds",       "Porto",
    "Uppsala",     "Denver",    "Madison",      "Helsinki",  "Dublin",      "Oslo",
    "Chester",     "Salem"};
static const char *const states[] = {"CA", "NY", "TX", "WA", "OR", "MA", "IL", "CO"};
static const char *const countries[] = {
    "Canada",         "Germany",   "Brazil",      "Finland",      "Kenya",       "United States",
    "United Kingdom", "France",    "Spain",       "Italy",        "Portugal",    "Netherlands",
    "Belgium",        "Sweden",    "Denmark",     "Austria",      "Switzerland", "Greece",
    "Turkey",         "Egypt",     "Nigeria",     "South Africa", "India",       "China",
    "South Korea",    "Australia", "New Zealand", "Mexico",       "Argentina",   "Peru",
    "Colombia",       "Israel",    "Jordan",      "Vietnam",      "Thailand",    "Indonesia",
    "Philippines",    "Georgia",   "Jamaica",     "Chad",         "Jersey",      "Virginia",
    "Texas",          "Florida",   "Montana",     "Nevada",       "Oregon",      "Japan",
    "Norway",         "Chile",     "Ireland",     "Poland",       "Iran",        "Iraq",
    "Syria",          "Russia",    "Ukraine",     "Pakistan",     "Afghanistan", "England",
    "Scotland",       "Wales",     "Oklahoma",    "Ohio",         "Michigan",    "Arizona",
    "Kansas",         "Kentucky",  "Alabama",     "Tennessee",    "Louisiana",   "Carolina",
    "Hawaii",         "Alaska",    "Utah",        "Idaho",        "Vermont",     "Maine",
    "Cuba",           "Haiti",     "Libya",       "Yemen",        "Qatar",       "Nepal",
    "Sudan",          "Somalia",   "Ghana",       "Uganda",       "Rwanda",      "Bolivia"};
static const char *const orgs_sfx[] = {
    "Inc",          "LLC",   "Ltd",        "Group",       "Partners",  "PLC",
    "and Sons",     "Corp",  "Co.",        "Associates",  "Labs",      "Holdings",
    "Technologies", "Bank",  "Foundation", "Investments", "Orchestra", "Brothers",
    "Studios",      "Trust", "Records",    "Van Lines",   "Realty"};
static const char *const products[] = {
    "iPhone",      "Kindle",   "Galaxy Note", "PlayStation", "Echo Dot",  "Model Y",
    "Surface Pro", "ThinkPad", "Mastercard",  "Visa",        "Apple Pay", "Google Pay",
    "PayPal",      "Xbox",     "Alexa",       "Netflix",     "Spotify",   "Uber"};
/* Words of a heading or a role alone on its line before a colon ("NOTE:", "ALL:"). */
static const char *const headings[] = {
    "NOTE",     "SUMMARY", "ANSWER",   "QUESTION", "USER",      "ASSISTANT", "SYSTEM", "INPUT",
    "OUTPUT",   "EXAMPLE", "CONTEXT",  "TASK",     "WARNING",   "SCENE",     "ALL",    "BOTH",
    "PROLOGUE", "CHORUS",  "EPILOGUE", "SERVANT",  "MESSENGER", "Note",      "Answer", "Summary"};
static const char *const pets[] = {"Spot",    "Fluffy", "Mittens",  "Whiskers",  "Tweetie", "Ducky",
                                   "Bubbles", "Sparky", "Snowball", "Mr. Teddy", "Patches"};
static const char *const jobs[] = {"nurse",
                                   "engineer",
                                   "teacher",
                                   "accountant",
                                   "pilot",
                                   "Engineer, civil",
                                   "Chief Executive Officer",
                                   "Sales Manager",
                                   "Art therapist",
                                   "Research Scientist",
                                   "Solicitor",
                                   "Product Designer",
                                   "Singer",
                                   "Packager",
                                   "Architect",
                                   "Photographer",
                                   "Librarian",
                                   "Surveyor",
                                   "Translator",
                                   "Economist",
                                   "Plumber",
                                   "Curator"};
static const char *const nations[] = {
    "Canadian",  "German",    "Brazilian",  "Finnish",   "Kenyan",    "French",      "Italian",
    "Spanish",   "Dutch",     "Swedish",    "Danish",    "Norwegian", "Polish",      "Czech",
    "Hungarian", "Greek",     "Turkish",    "Egyptian",  "Nigerian",  "Ghanaian",    "Indian",
    "Chinese",   "Japanese",  "Korean",     "Thai",      "Mexican",   "Argentinian", "Peruvian",
    "Chilean",   "Irish",     "Scottish",   "Welsh",     "English",   "American",    "Australian",
    "Russian",   "Ukrainian", "Austrian",   "Swiss",     "Belgian",   "Portuguese",  "Israeli",
    "Moroccan",  "Filipino",  "Vietnamese", "Icelandic", "Estonian",  "Romanian",    "Serbian"};
/* Acronyms and abbreviations in capitals: no names. */
static const char *const acronyms[] = {
    "ASAP",  "FYI",  "RSVP", "CEO", "CFO",  "USA",   "UK",  "EU",  "NASA", "FAQ",  "PS",   "NB",
    "ETA",   "TBD",  "HR",   "IT",  "PR",   "QA",    "VIP", "DIY", "AKA",  "OK",   "ID",   "PDF",
    "BBC",   "CNN",  "NATO", "UN",  "IRS",  "FBI",   "DJ",  "TV",  "PIN",  "ATM",  "API",  "CSV",
    "JSON",  "SQL",  "HTML", "GPU", "CPU",  "USB",   "URL", "UTC", "GMT",  "GDP",  "VAT",  "AI",
    "LLM",   "SMS",  "OTP",  "DNA", "WHO",  "EUR",   "USD", "GBP", "AUD",  "CAD",  "JPY",  "SEPA",
    "SWIFT", "ISIS", "SUV",  "NBA", "NaCl", "AgNO3", "H2O", "CO2", "WBCs", "DVDs", "GPUs", "Hg",
    "II",    "III",  "IV",   "XIV", "mRNA", "pH",    "iOS", "eBay"};
/* Holidays and named days: capitalised, no names. */
static const char *const holidays[] = {
    "Labor Day",        "Christmas",       "Easter",       "Thanksgiving", "New Year's Day",
    "Halloween",        "Memorial Day",    "Mother's Day", "Father's Day", "Boxing Day",
    "Independence Day", "Valentine's Day", "Hanukkah",     "Ramadan",      "Diwali",
    "Good Friday",      "Veterans Day"};
static const char *const days[] = {"Monday", "Tuesday", "Wednesday", "Friday", "Sunday"};
static const char *const ibans[] = {"GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00",
                                    "FR14 2004 1010 0505 0001 3M02 606"};
static const char *const city_pre[] = {"North", "South", "East", "West",  "New",
                                       "Lake",  "Port",  "Fort", "Mount", "Saint"};
static const char *const city_sfx[] = {"town",    "ton",   "land", "ville", "berg",  "burgh",
                                       "borough", "bury",  "view", "port",  "mouth", "stad",
                                       "chester", "haven", "side", "shire", "field", "ford"};
static const char *const street_sfx2[] = {
    "Alley",   "Branch",   "Brook",     "Burg",     "Bypass",  "Camp",    "Canyon",     "Causeway",
    "Circle",  "Cliff",    "Club",      "Common",   "Corner",  "Course",  "Cove",       "Creek",
    "Crest",   "Crossing", "Curve",     "Dale",     "Divide",  "Estates", "Expressway", "Falls",
    "Ferry",   "Fields",   "Flats",     "Ford",     "Forge",   "Fork",    "Freeway",    "Gardens",
    "Gateway", "Glen",     "Green",     "Grove",    "Harbor",  "Haven",   "Heights",    "Highway",
    "Hollow",  "Inlet",    "Island",    "Junction", "Knoll",   "Landing", "Light",      "Lodge",
    "Loop",    "Mall",     "Manor",     "Meadow",   "Mews",    "Mission", "Motorway",   "Mount",
    "Oval",    "Pass",     "Passage",   "Path",     "Pike",    "Plaza",   "Point",      "Port",
    "Prairie", "Ranch",    "Rapids",    "Ridge",    "Route",   "Run",     "Shore",      "Skyway",
    "Spur",    "Square",   "Stravenue", "Stream",   "Summit",  "Trace",   "Track",      "Trail",
    "Tunnel",  "Turnpike", "Underpass", "Via",      "Viaduct", "View",    "Villages",   "Vista",
    "Walk",    "Well",     "road",      "street",   "lane",    "close",   "drive",      "avenue"};
static const char *const directions[] = {"N.",    "S.",   "E.",   "W.", "North",
                                         "South", "East", "West", "NE", "SW"};
static const char *const units[] = {"Apt.", "Apt", "Suite", "Unit", "#", "Flat", "Room", "Floor"};
/* Surname endings of other languages, built onto census surnames' stems. */
static const char *const foreign_sfx[] = {"ová",  "ski",  "sson",   "escu", "enko", "ić",
                                          "idis", "oğlu", "dottir", "nen",  "ez"};
static const char *const particles[] = {"van", "de", "von", "da", "de la", "van der", "di"};
/* Words that open a prompt or stand alone in one: commands and status words. */
static const char *const commands[] = {
    "Summarize", "Explain", "Describe", "Translate", "List", "Compare", "Classify", "Rewrite",
    "Generate", "Fix", "Review", "Answer", "Calculate", "Solve", "Define", "Outline", "Draft",
    "Continue", "Retry", "Calling", "Overloaded", "Pending", "Done", "Stop", "Proceed", "Completed",
    "Failed", "Thinking", "Loading", "Refactor", "Paraphrase", "Proofread", "Extract", "Categorize",
    "Shorten",
    /* verbs that are census surnames too: a prompt opens with them */
    "Stream", "Read", "Check", "Cook", "Bake", "Fish", "Post", "Ring", "Hunt", "Walk", "Rush",
    "Park", "Hook", "Pack", "Wash", "Brush", "Fetch", "Gather", "Fill", "Lock", "Seal", "Stamp",
    "Trace", "Trim", "Patch", "Pitch", "Press", "Push", "Rank", "Save", "Score", "Show", "Sing",
    "Spell", "Sum", "Test", "Grade", "Code", "Drop", "Forward", "Dash",
    /* more of the verbs prompts open with, census surnames among them */
    "Print", "Use", "Create", "Write", "Imagine", "Revise", "Craft", "Alter", "Edit", "Design",
    "Find", "Identify", "Provide", "Consider", "Suppose", "Assume", "Determine", "Evaluate",
    "Implement", "Convert", "Sort", "Return", "Delete", "Transfer", "Cancel", "Reset", "Change",
    "Add", "Remove", "Tell", "Give", "Make", "Pretend", "Act", "Analyze", "Discuss", "Predict",
    "Estimate", "Propose", "Suggest", "Recommend", "Choose", "Select", "Draw", "Count", "Plan",
    "Play", "Rate", "Match", "Guess", "Prove", "Simplify", "Expand", "Factor", "Graph", "Verify"};
/* Month names as dates write them. */
static const char *const months[] = {"January",  "February", "March",  "April",     "May",
                                     "June",     "July",     "August", "September", "October",
                                     "November", "December", "Jan.",   "Feb.",      "Aug.",
                                     "Sept.",    "Oct.",     "Nov.",   "Dec.",      "Mar."};
/* Capitalised nouns a number follows in headings, questions and names of things
 * ("Scenario 2", "Chapter 3", "Windows 10"): no house numbers. */
static const char *const numbered[] = {
    "Scenario", "Chapter",  "Step",    "Question", "Part",   "Option",  "Table",      "Figure",
    "Level",    "Round",    "Week",    "Day",      "Grade",  "Season",  "Episode",    "Phase",
    "Track",    "Exercise", "Problem", "Example",  "Lesson", "Section", "Version",    "Page",
    "Item",     "Case",     "Game",    "Act",      "Verse",  "Rule",    "Article",    "Windows",
    "Xbox",     "Ligue",    "Series",  "Model",    "Group",  "Class",   "Task",       "Stage",
    "Volume",   "Issue",    "Tier",    "Sprint",   "Psalm",  "Genesis", "Formula",    "Channel",
    "Gate",     "Terminal", "Flight",  "Bus",      "Route",  "Highway", "Interstate", "Pier"};
/* Answers of multiple-choice questions that are words, capitalised. */
static const char *const mc_words[] = {"Wrong, Wrong",
                                       "Wrong, Not wrong",
                                       "Not wrong, Wrong",
                                       "Not wrong, Not wrong",
                                       "True",
                                       "False",
                                       "Yes",
                                       "No",
                                       "All of the above",
                                       "None of the above",
                                       "Both",
                                       "Neither",
                                       "Increase",
                                       "Decrease",
                                       "Always",
                                       "Never",
                                       "Only I",
                                       "I and II",
                                       "Agree",
                                       "Disagree",
                                       "It depends",
                                       "Cannot be determined",
                                       "Mitosis",
                                       "Photosynthesis",
                                       "Inflation"};
/* Stop sequences and section markers, in capitals. */
static const char *const stop_words[] = {"END",     "HALT",    "STOP",   "DONE",  "EOF",
                                         "FINISH",  "ANSWER",  "OUTPUT", "INPUT", "QUESTION",
                                         "CONTEXT", "SUMMARY", "RESULT", "NOTE",  "TODO"};

/* Syllables of invented brand and place names ("Lumaxa", "Ostrava"-like words that are
 * in no list): negatives for PERSON that look like nothing the gazetteer knows. */
static const char *const syl[] = {"ver", "da",  "fe", "ro", "en",  "vee", "zo",  "tri", "lum",
                                  "ax",  "qua", "on", "ix", "ly",  "na",  "tek", "mi",  "sol",
                                  "va",  "ter", "bi", "o",  "vi",  "ra",  "cor", "gen", "lo",
                                  "sta", "pex", "nu", "ka", "bra", "ste", "ul",  "ja",  "ho"};
/* Words firms are named with besides surnames: an adjective or noun, then a trade. */
static const char *const org_words[] = {
    "Civic",   "Summit",   "Bright", "Apex",  "Blue",     "Data",  "Health", "Insight", "Global",
    "Pacific", "United",   "First",  "Open",  "Smart",    "Green", "Silver", "Prime",   "Vertex",
    "Harbor",  "Northern", "Allied", "Royal", "National", "Metro", "Digital"};
static const char *const org_trades[] = {"Insurance",       "Bioscience",
                                         "Markets",         "Analytics",
                                         "Consulting",      "Economic Consulting",
                                         "Software",        "Media",
                                         "Energy",          "Logistics",
                                         "Capital",         "Systems",
                                         "Networks",        "Pharma",
                                         "Foods",           "Motors",
                                         "Explorer",        "Solutions",
                                         "Ventures",        "Research",
                                         "Insurance Group", "Life Technologies",
                                         "Coach",           "Works"};
/* Job titles as a CV heading writes them: a field, then a role. */
static const char *const job_fields[] = {"Network and computer systems",
                                         "Staff development",
                                         "Quality assurance",
                                         "Human resources",
                                         "Clinical research",
                                         "Retail sales",
                                         "Leasing",
                                         "Marketing",
                                         "Payroll",
                                         "Talking-books",
                                         "Customer service",
                                         "Field service",
                                         "Software",
                                         "Medical records",
                                         "Loan",
                                         "Claims",
                                         "Construction",
                                         "Laboratory",
                                         "Legal",
                                         "Insurance"};
static const char *const job_roles[] = {"administrator", "specialist", "clerk",      "manager",
                                        "analyst",       "officer",    "technician", "consultant",
                                        "coordinator",   "assistant",  "agent",      "supervisor"};
/* Street words of other languages, before or after the name they go with. */
static const char *const street_pre[] = {"rue",     "Rue",    "Rua do", "Via",    "Calle", "ul.",
                                         "Avenida", "Strada", "Place",  "Chemin", "Rua"};
static const char *const street_post[] = {"vej", "gatan", "straße", "weg",  "katu",  "gata",
                                          " u.", " utca", "plein",  "laan", "veien", " tér"};
static const char *const countries2[] = {
    "Cyprus",   "Hungary",   "Czech Republic", "Iceland",  "Romania",      "Croatia",
    "Slovenia", "Serbia",    "Ukraine",        "Morocco",  "Tunisia",      "Luxembourg",
    "Estonia",  "Latvia",    "Lithuania",      "Bulgaria", "Slovakia",     "Malta",
    "Uruguay",  "Venezuela", "Bolivia",        "Ecuador",  "Vatican City", "Monaco"};

/* Syllables and endings of given names and surnames of other languages, for names in
 * no census list ("Vesmira", "Kolbrandt", "Tamiko"): the labeller must learn names by
 * their place and shape, not only by the gazetteer. */
static const char *const name_syl[] = {"ve",  "mi",  "ko", "ta",  "ra",  "lu", "sa",  "do",
                                       "jan", "bo",  "ri", "na",  "hal", "ei", "sve", "al",
                                       "ya",  "zo",  "ke", "fri", "gu",  "am", "ili", "or",
                                       "dra", "tho", "ne", "ki",  "vla", "ma", "sig", "ai"};
static const char *const name_end[] = {
    "a",    "ia",  "ina",  "ika", "ela",  "ko",     "ov",  "mir", "slav", "bert",
    "rik",  "do",  "ro",   "ja",  "ei",   "ud",     "ira", "ndt", "hild", "mund",
    "ette", "oud", "ani",  "ayo", "emi",  "uko",    "ova", "ski", "ssen", "ström",
    "anu",  "itz", "ahan", "ero", "inho", "dóttir", "yev", "ulu", "ović", "aki"};
/* Capitalised words that are no names: titles of books, songs and shows, bands, plural
 * nouns, headings (negatives in the places names take). */
static const char *const cap_adj[] = {
    "Silver", "Broken", "Little", "Lost",    "Golden", "Quiet",   "Endless", "Hidden", "Electric",
    "Wild",   "Last",   "Secret", "Burning", "Frozen", "Crimson", "Lonely",  "Velvet", "Hollow"};
static const char *const cap_noun[] = {
    "Lantern", "Wings",   "Shadow",  "River",   "Garden",  "Machine", "Dreams",  "Mountain",
    "Harbor",  "Kingdom", "Echoes",  "Stars",   "Thunder", "Pilgrim", "Horizon", "Voyage",
    "Dragons", "Robots",  "Pirates", "Wizards", "Giants",  "Goblins", "Sailors", "Ghosts",
    "Season",  "Highway", "Summer",  "Letters", "Islands", "Tides",   "Engines", "Crowns"};
static const char *const cap_tail[] = {
    "of the North",      "of Autumn", "in the Rain", "at Midnight",
    "and Other Stories", "Returns",   "Rising",      "Forever"};
static const char *const channels[] = {"TV", "Radio", "News", "FM", "Live", "Weekly", "Today"};
static const char *const verb_phrases[] = {"is very late again",
                                           "was right about the plan",
                                           "has moved away",
                                           "never answers the phone",
                                           "will join us later",
                                           "won the prize last year",
                                           "looks tired today",
                                           "forgot the keys again",
                                           "is sorry about it",
                                           "kept the receipt",
                                           "said nothing at all",
                                           "left before dinner",
                                           "was here this morning",
                                           "wants to talk to you",
                                           "needs a new laptop",
                                           "is the best choice",
                                           "made the list again",
                                           "sounds great to me",
                                           "lost the match",
                                           "has a new office",
                                           "was closed on Sunday",
                                           "changed everything",
                                           "is on the second floor",
                                           "grew up by the sea",
                                           "got the job",
                                           "asked about the refund",
                                           "started in March"};
/* Words that open sentences: adverbs, greetings, imperatives, nouns of a note's first
 * line. Capitalised by the grammar, never names. */
static const char *const openers[] = {
    "Honestly",     "Sadly",        "Luckily",       "Meanwhile",    "Finally",    "Tomorrow",
    "Tonight",      "Anyway",       "Actually",      "Perhaps",      "Sometimes",  "Usually",
    "Later",        "Soon",         "Besides",       "Instead",      "Otherwise",  "Overall",
    "Basically",    "Clearly",      "Seriously",     "Apparently",   "Hopefully",  "Obviously",
    "Suddenly",     "Eventually",   "Recently",      "Currently",    "Generally",  "Personally",
    "Frankly",      "Naturally",    "Admittedly",    "Still",        "Yesterday",  "Check",
    "Bring",        "Remind",       "Book",          "Order",        "Pick",       "Grab",
    "Buy",          "Dinner",       "Coffee",        "Weather",      "Traffic",    "Budget",
    "Invoice",      "Delivery",     "Update",        "Reminder",     "Agenda",     "Urgent",
    "Quick",        "Great",        "Nice",          "Awesome",      "Sure",       "Okay",
    "Alright",      "Congrats",     "Welcome",       "Cheers",       "Oops",       "Wow",
    "Nope",         "Indeed",       "Exactly",       "Absolutely",   "However",    "Thereafter",
    "Therefore",    "Moreover",     "Furthermore",   "Nevertheless", "Thus",       "Hence",
    "Additionally", "Consequently", "Unfortunately", "Similarly",    "Nonetheless"};
/* Common English words, in lower case: capitalised they stand where names do (a
 * swapped word, a title, a heading, a shouted line) and are no names. */
static const char *const vocab_noun[] = {
    "time",         "year",         "day",       "week",       "night",      "morning",
    "world",        "life",         "hand",      "part",       "place",      "case",
    "point",        "home",         "water",     "room",       "money",      "story",
    "fact",         "month",        "lot",       "right",      "study",      "book",
    "eye",          "job",          "word",      "business",   "issue",      "side",
    "kind",         "head",         "house",     "service",    "friend",     "power",
    "hour",         "game",         "line",      "end",        "member",     "law",
    "car",          "city",         "name",      "team",       "minute",     "idea",
    "body",         "information",  "back",      "parent",     "face",       "others",
    "level",        "office",       "door",      "health",     "art",        "war",
    "history",      "party",        "result",    "change",     "reason",     "research",
    "girl",         "guy",          "moment",    "air",        "teacher",    "force",
    "education",    "foot",         "boy",       "age",        "policy",     "music",
    "market",       "sense",        "nation",    "plan",       "college",    "interest",
    "death",        "experience",   "effect",    "class",      "control",    "care",
    "field",        "development",  "role",      "effort",     "rate",       "heart",
    "drug",         "show",         "leader",    "light",      "voice",      "wife",
    "police",       "mind",         "price",     "report",     "decision",   "son",
    "view",         "relationship", "town",      "road",       "arm",        "difference",
    "value",        "building",     "action",    "model",      "season",     "society",
    "tax",          "director",     "position",  "player",     "record",     "paper",
    "space",        "ground",       "form",      "event",      "official",   "matter",
    "center",       "couple",       "site",      "project",    "activity",   "star",
    "table",        "need",         "court",     "oil",        "situation",  "cost",
    "industry",     "figure",       "street",    "image",      "phone",      "data",
    "picture",      "practice",     "piece",     "land",       "product",    "doctor",
    "wall",         "patient",      "worker",    "news",       "test",       "movie",
    "north",        "love",         "support",   "technology", "step",       "baby",
    "computer",     "type",         "attention", "film",       "tree",       "source",
    "organization", "hair",         "window",    "evidence",   "population", "truth",
    "song",         "ship",         "wisdom",    "discipline", "courage",    "honor",
    "freedom",      "justice",      "glory",     "mercy",      "victory",    "silence",
    "fortune",      "thunder",      "harvest",   "winter",     "spring",     "autumn",
    "bridge",       "castle",       "engine",    "anchor",     "arrow",      "beacon",
    "canyon",       "compass",      "crystal",   "feather",    "forest",     "island",
    "meadow",
};
static const char *const vocab_verb[] = {
    "carry",  "bring",    "keep",       "hold",    "turn",    "start",   "show",     "hear",
    "play",   "run",      "move",       "live",    "believe", "happen",  "write",    "provide",
    "sit",    "stand",    "lose",       "pay",     "meet",    "include", "continue", "set",
    "learn",  "lead",     "understand", "watch",   "follow",  "stop",    "create",   "speak",
    "read",   "allow",    "add",        "spend",   "grow",    "open",    "walk",     "win",
    "offer",  "remember", "consider",   "appear",  "buy",     "wait",    "serve",    "die",
    "send",   "expect",   "build",      "stay",    "fall",    "cut",     "reach",    "kill",
    "remain", "suggest",  "raise",      "pass",    "sell",    "require", "report",   "decide",
    "pull",   "return",   "explain",    "hope",    "develop", "drive",   "break",    "receive",
    "agree",  "support",  "hit",        "produce", "eat",     "cover",   "catch",    "draw",
    "choose", "cause",    "point",      "listen",  "realize", "place",   "close",    "involve",
    "thank",  "forget",   "award",      "call",    "ask",     "tell",    "feel",     "leave",
    "put",    "mean",     "let",        "begin",   "seem",    "help",    "talk",
};
static const char *const vocab_adj[] = {
    "new",       "good",      "high",       "old",       "great",         "big",
    "small",     "large",     "national",   "young",     "different",     "long",
    "little",    "important", "political",  "bad",       "real",          "best",
    "right",     "social",    "only",       "public",    "sure",          "low",
    "early",     "able",      "human",      "local",     "late",          "hard",
    "major",     "better",    "economic",   "strong",    "possible",      "whole",
    "free",      "military",  "true",       "federal",   "international", "full",
    "special",   "easy",      "clear",      "recent",    "certain",       "personal",
    "open",      "red",       "difficult",  "available", "likely",        "short",
    "single",    "medical",   "current",    "wrong",     "private",       "past",
    "foreign",   "fine",      "common",     "poor",      "natural",       "significant",
    "similar",   "hot",       "dead",       "central",   "happy",         "serious",
    "ready",     "simple",    "left",       "physical",  "general",       "environmental",
    "financial", "blue",      "democratic", "dark",      "various",       "entire",
    "close",     "legal",     "religious",  "cold",      "final",         "main",
    "green",     "nice",      "huge",       "popular",   "traditional",   "cultural",
    "brave",     "bright",    "calm",       "eager",     "fancy",         "gentle",
    "proud",     "quick",     "silent",     "sweet",     "wild",          "wise",
};
/* Words a sentence opens with besides openers: articles, pronouns, conjunctions,
 * question words. */
static const char *const start_small[] = {
    "An",     "A",     "The",    "This",  "That", "These",  "Those",    "Some",    "Any",
    "Every",  "Each",  "No",     "All",   "Both", "Such",   "Many",     "Most",    "Few",
    "Other",  "Maybe", "Also",   "Then",  "Now",  "Here",   "There",    "Why",     "How",
    "What",   "When",  "Where",  "Which", "If",   "Unless", "Although", "Because", "Since",
    "While",  "After", "Before", "Once",  "As",   "So",     "Yet",      "Or",      "Please",
    "Thanks", "Sorry", "Yes",    "Hey",   "Oh",   "Well",   "Just",     "Only",    "Even",
    "Our",    "Their", "Its",    "Your",  "My",   "We",     "They",     "It"};
/* Small words of titles ("Carry It Back To the Sea"). */
static const char *const vocab_small[] = {
    "me", "to",   "the", "of",   "in", "on",   "at",   "for",  "with", "and",
    "my", "your", "our", "back", "up", "down", "over", "from", "by",
};
/* Given names that are also words ("Lily", "Will", "Hope"): the gazetteer marks them
 * common, and the negatives above are full of capitalised common words, so they are
 * drawn as often as a frequent census name or the labeller forgets them. */
static const char *const word_names[] = {
    "Lily",  "Rose",    "Daisy", "Grace", "Hope", "Joy",      "Faith",    "Ivy",   "Violet",
    "Iris",  "Dawn",    "Will",  "Mark",  "Bill", "Jack",     "Ruby",     "Pearl", "Amber",
    "Holly", "Heather", "Olive", "Sunny", "Rich", "Bob",      "Hunter",   "Chase", "Grant",
    "Dean",  "Miles",   "Frank", "Art",   "Sue",  "Patience", "Prudence", "Rusty", "June"};
/* Lower-case prose of words that are census names too ("the young fox will grow"):
 * text read in lower case, where two such words make a window and must stay words. */
static const char *const plain_adj[] = {"young", "long",   "little", "small",  "rich",  "golden",
                                        "sharp", "strong", "dark",   "bright", "good",  "fine",
                                        "early", "gray",   "wise",   "hardy",  "noble", "green",
                                        "brown", "white",  "black",  "sunny",  "gentle"};
static const char *const plain_noun[] = {
    "king",   "rose",   "stone", "hill",   "lake",  "wood",   "field",  "fox",    "wolf",
    "house",  "garden", "tower", "gate",   "bell",  "song",   "story",  "rain",   "snow",
    "frost",  "bay",    "marsh", "church", "baker", "miller", "hunter", "farmer", "fisher",
    "porter", "mason",  "rider", "cherry", "olive", "holly",  "pearl",  "ivy",    "meadows"};
static const char *const plain_verb[] = {
    "will grow", "sang", "may fall", "stood",     "rang",   "will shine", "grew",        "hid",
    "fell",      "ran",  "waited",   "will stay", "rested", "turned",     "hope to win", "rose"};
static const char *const plain_tail[] = {
    "all day",       "by the lake", "in the rain", "at night",    "near the hill", "long ago",
    "and went home", "in june",     "with joy",    "for a price", "by the bay",    "in the fields"};
static const char *const fpo[] = {"USNS", "USNV", "USS", "USCGC"};

/* Verbs that take an object, in the forms a sentence uses them ("met", "will call",
 * "wants to see"), and prepositions: the free sentences' glue. */
static const char *const free_verb[] = {"met",
                                        "called",
                                        "asked",
                                        "told",
                                        "saw",
                                        "thanked",
                                        "visited",
                                        "emailed",
                                        "hired",
                                        "invited",
                                        "will meet",
                                        "will call",
                                        "wants to see",
                                        "should ask",
                                        "can help",
                                        "works with",
                                        "talked to",
                                        "wrote to",
                                        "waited for",
                                        "voted for",
                                        "replaced",
                                        "interviewed",
                                        "trained",
                                        "beat",
                                        "married",
                                        "followed",
                                        "introduced",
                                        "recommended",
                                        "signed",
                                        "joined",
                                        "is looking for",
                                        "has not paid",
                                        "sent a gift to",
                                        "lives next to",
                                        "argued with",
                                        "drove",
                                        "blamed",
                                        "reminded",
                                        "texted",
                                        "paid"};
static const char *const free_prep[] = {"with",  "for",    "to",   "at",     "from",
                                        "about", "after",  "near", "behind", "like",
                                        "on",    "before", "by",   "without"};
static const char *const free_pron[] = {"I",   "We",      "They",   "She",      "He",
                                        "You", "Someone", "Nobody", "Everyone", "It"};
static const char *const free_obj[] = {"me", "us", "them", "her", "him", "you", "everyone", "it"};
static const char *const free_end[] = {".", ".", ".", "!", "?", "", "...", " :)"};

/* Own sentences: contexts the templates lack, and negatives (no personal data). */
static const char *const own[] = {
    "{{person}} wrote back the next morning.",
    "Please ask {{first_name}} to call me.",
    "Yesterday {{person}} moved to {{address}}.",
    "The parcel for {{person}} goes to {{address}}.",
    "Send the invoice to {{person}}, {{address}}.",
    "Regards,\n{{person}}",
    "From: {{person}}\nTo: {{person}}",
    "My neighbour {{first_name}} {{last_name}} lives at {{address}}.",
    "{{last_name}} said the meeting was moved.",
    "Is {{person}} still at {{street_name}}?",
    "Spot and Fluffy played in the garden all day.",
    "Sure, the {{product}} ships from {{city}} on {{day_of_week}}.",
    "However, {{organization}} opened an office in {{city}}.",
    "Tweetie the bird sang while Mittens slept.",
    "Thanks! The new {{product}} works great.",
    "The river near {{city}} floods every spring.",
    "{{pet}} the toy train went round and round.",
    "We visited {{country}} and {{city}} last {{day_of_week}}.",
    "Order 12 units of the {{product}} for the {{city}} store.",
    "Mommy said the cake was ready.",
    "Attendees: {{person}}, {{person}}, {{first_name}} and {{person}}.",
    "cc: {{person}}; {{person}}",
    "{{first_name}}'s order ships to {{address}} on {{day_of_week}}.",
    "I spoke with {{person}} ({{job}}) about the refund.",
    "\"{{person}}\" is the name on the lease at {{address}}.",
    "Ship to:\n{{person}}\n{{address}}",
    "[{{first_name}}] can you check {{person}}'s ticket?",
    "Signed, {{person}}, {{job}} at {{organization}}",
    "Contact: {{last_name}}, {{first_name}} - {{phone_number}}",
    "Hi {{first_name}},\nthanks for the update. {{first_name}}",
    "The {{organization}} office on {{street_name}} closes at five.",
    "Deliver to {{address}} (leave with {{first_name}}).",
    "We drove from {{city}} to {{city}} along {{street_name}}.",
    "North Star Diner and Lake View Hotel are near {{city}}.",
    "The Hudson River Bridge in {{city}} is closed until Friday.",
    "Apple, Google and Amazon reported earnings on Monday.",
    "Mr. Smith's Bakery at {{address}} is open.",
    "{{person}}: see you at {{address}} at 6.",
    "According to {{person}}, the {{product}} sold out in {{country}}.",
    "Update my mailing address to {{address}}, please. Thanks, {{first_name}}",
    "The Grand Canyon and Yellowstone were busy this summer.",
    "My dog {{pet}} and my cat {{pet}} sleep all day.",
    "Captain America and Iron Man are my favourite films.",
    /* prompts as a gateway sees them: commands, status words, stop sequences */
    "{{command}}.",
    "{{command}}: {{command}}",
    "{{command}} the following text in three sentences.",
    "{{command}} {{acronym}}.",
    "{{command}} {{acronym}} and {{acronym}} for a beginner",
    "{{stop_word}}",
    "Stop at {{stop_word}} or {{stop_word}}.",
    "Error: {{command}}",
    "Status: {{command}}. Next step: {{command}}",
    "{{command}} this email for {{person}}",
    "Write a poem about {{city}}.",
    "Ask {{first_name}} to bring the book.",
    "Hi, I am {{person}}",
    "{{stop_word}}\n{{command}}: the {{product}} from {{organization}}",
    "{{command}} the {{acronym}} report and send it to {{first_name}}",
    "Invite list: {{person_list}}",
    "{{person_list}} and {{person}} signed the petition.",
    /* prompts of the traffic a gateway routes: multiple-choice questions, numbered
     * headings, dates, ages after names, questions opening with a given name that is
     * a word ("Will", "May") and acronyms where names could stand */
    "Which of the following is correct?{{mc_options}}",
    "{{numbered}}: {{command}} the {{cap_noun}} of {{city}}.{{mc_options}}",
    "For which of these two scenarios does the main character do something clearly morally "
    "wrong? Scenario 1 | I {{verb_phrase}}. Scenario 2 | {{first_name}} {{verb_phrase}}."
    "{{mc_options}}",
    "Who wrote {{work_title}}?{{mc_persons}}",
    "{{numbered}} | {{first_name}} {{verb_phrase}}.",
    "Answer: {{mc_letter}}",
    "The answer is ({{mc_letter}}). {{numbered}} explains why.",
    "{{first_name}} has {{small_num}} apples and gives {{small_num}} to {{first_name}}. How "
    "many are left?",
    "On {{date}}, {{person}}, {{age}}, {{verb_phrase}}.",
    "{{person}}, {{age}}, told {{channel}} on {{date}} that the {{cap_noun}} {{verb_phrase}}.",
    "The {{cap_noun}} opened in {{year}} and closed on {{date}}.",
    "Since {{year}} the {{cap_noun}} has played in {{numbered}}.",
    "Book a table for {{small_num}} from {{date}} to {{date}}.",
    "{{date}}: {{organization}} {{verb_phrase}}.",
    "{{command}} a short story about {{first_name}} and a {{cap_noun}}.",
    "{{command}} {{numbered}} and {{numbered}} of the report.",
    "{{command}} your previous answer. {{command}} it in {{small_num}} words.",
    "{{command}} the following {{acronym_word}} data:\n{{cap_noun}},{{cap_noun}},{{cap_noun}}"
    "\n{{year}},{{small_num}},{{small_num}}",
    "{{command}} all {{acronym_word}} entries before {{date}}.",
    "Will I get my {{acronym_word}} by {{day_of_week}}?",
    "Will I be charged for the {{product}} transfer?",
    "Will it take long to get a new {{acronym_word}}?",
    "Will the {{vocab_noun}} be ready by {{date}}?",
    "Will you tell {{first_name}} about the {{vocab_noun}}?",
    "May I ask why my {{product}} payment was declined?",
    "Which {{acronym_word}}s take a {{product}} card in {{country}}?",
    "My {{acronym_word}} is blocked. What now?",
    "Can I send money to {{country}} with {{product}}?",
    "I am in {{country}} and my {{product}} card does not work.",
    "Will my {{product}} arrive before {{date}}?",
    "May I pay in {{acronym_word}}?",
    "Can I use my {{acronym_word}} at an {{acronym_word}} in {{country}}?",
    "Translate to French: {{person}} {{verb_phrase}} on {{date}}.",
    "{{numbered}}\n{{command}} the {{cap_noun}}. {{command}} the {{cap_noun}}.",
    "Which of these is a {{vocab_noun}}?{{mc_options}}\nAnswer:",
    "{{first_name}} asked: which one is right?{{mc_options}}",
    "Choose one:{{mc_options}}",
    "{{country}} {{verb_phrase}}.",
    "In {{country}}, {{person}} {{verb_phrase}}.",
    "{{country}} beat {{country}} on {{date}}; {{last_name}} scored twice.",
    "{{country}} and {{country}} signed the deal in {{year}}.",
    /* single names in the places a sentence puts them, and lists of them */
    "{{first_name}} laughed and closed the door.",
    "{{first_name}} and {{first_name}} went to the market on {{day_of_week}}.",
    "{{last_name}} scored twice in the second half.",
    "{{first_name}}, can you send me the file?",
    "Thanks, {{first_name}}!",
    "Ask {{last_name}} about the budget before noon.",
    "{{first_name}}: are you coming tonight?",
    "> {{first_name}} wrote:\n> I disagree with that.",
    ">{{person}}\n>{{address}}",
    "{{person}}\n{{organization}}\n{{person}}\n{{address}}",
    ">{{person}}\n>{{organization}}\n>{{person}}\n>{{address}}",
    "> \n> {{person}}\n> {{organization}}\n> {{person}}\n> {{address}}",
    "{{person}}\n{{organization}}\n{{address}}\n{{phone_number}}",
    ">{{person}}",
    "> {{person}}\n> {{job}}",
    ">> {{first_name}}: {{verb_phrase}}",
    "The {{firm_of_names}} Orchestra was founded in {{year}}.",
    "{{surname_firm}} is a firm based in {{city}}.",
    "Tell {{first_name}} I said hi.",
    "We named the baby {{first_name}}.",
    "Her daughter {{first_name}} starts school in {{city}}.",
    "The kids were {{first_list}}.",
    "Partners: {{last_list}}.",
    "The firm was started by {{last_list}} in {{year}}.",
    "{{first_name}}'s bike was stolen from {{address}}.",
    "Did {{first_name}} finish reading {{work_title}}?",
    "I finally read \"{{work_title}}\" by {{person}}.",
    "{{band}} played \"{{work_title}}\" live in {{city}}.",
    "The {{work_title}} tour by {{band}} starts on {{day_of_week}}.",
    "{{person}} told {{channel}} the album was finished.",
    "Watch {{work_title}} on {{channel}} tonight.",
    "{{cap_noun}} and {{cap_noun}} fill the new season of {{work_title}}.",
    "Welcome to {{organization}}! Your agent today is {{first_name}}.",
    "- {{person}}\n- {{person}}\n- {{person}}",
    "1. {{person}}\n2. {{person}}\n3. {{last_name}}",
    "Dear {{prefix}} {{last_name}},\nyour order has shipped.",
    "Dear {{first_name}}, thank you for your letter.",
    "Best wishes, {{first_name}} and {{first_name}}",
    "{{first_name}} ({{age}}) and {{first_name}} ({{age}}) share a room.",
    "Photo by {{person}} / {{organization}}",
    "Written by {{person}}; edited by {{person}}.",
    "Re: {{work_title}}\n\n{{first_name}}, see the notes below.",
    "Meeting with {{last_name}} moved to {{day_of_week}}.",
    "{{last_name}} and {{last_name}} were the first two to arrive.",
    "Coach {{last_name}} benched {{first_name}} for the final.",
    "Judge {{last_name}} ruled against {{organization}}.",
    "My cousin {{first_name}} from {{country}} is visiting.",
    "Happy birthday {{first_name}}!!",
    "Who is {{first_name}}?",
    "I think {{first_name}} {{last_name}} would agree.",
    "Nobody called, except {{first_name}}.",
    "Is this {{first_name}}'s jacket or {{first_name}}'s?",
    "Book club: {{work_title}}, {{work_title}} and {{work_title}}",
    "Top picks: {{band}}, {{band}} and {{band}}.",
    "{{cap_noun}}, {{cap_noun}} and {{cap_noun}} are in the new game.",
    "Chapter {{age}}: {{work_title}}",
    "New from {{organization}}: the {{product}} {{cap_adj}} Edition.",
    "RSVP to {{first_name}} by {{day_of_week}}.",
    "{{first_name}}?? where are you",
    "Interview with {{person}}, {{job}} at {{organization}}.",
    "{{person}}, {{person}} and {{person}} won the {{work_title}} award.",
    "On {{day_of_week}}, {{first_name}} met {{first_name}} at the {{city}} station.",
    "Lunch with {{first_name}}? Sure.",
    "Patient {{person}}, born {{year}}, seen by Dr. {{last_name}}.",
    "Student: {{person}}\nGrade: {{age}}",
    "{{first_name}} was born in {{city}} and raised in {{country}}.",
    "The {{last_name}} family lives at {{address}}.",
    "{{work_title}} ({{year}}) stars {{person}} and {{person}}.",
    "Breaking: {{organization}} buys {{band}} for {{age}} million.",
    "{{cap_adj}} {{cap_noun}}\n{{work_title}}\n{{cap_noun}}",
    "Visit the {{cap_adj}} {{cap_noun}} in {{city}} this {{day_of_week}}.",
    "A song for {{first_name}}, and one for {{first_name}}.",
    "Say hello to {{first_name}} and the {{cap_noun}}!",
    "{{first_name}} {{last_name}} - {{job}} - {{city}}",
    /* what a sentence says of its subject, whatever the subject is */
    "{{first_name}} {{verb_phrase}}.",
    "{{last_name}} {{verb_phrase}}.",
    "{{person}} {{verb_phrase}}.",
    "{{first_name}} and {{first_name}} {{verb_phrase}}.",
    "{{organization}} {{verb_phrase}}.",
    "{{city}} {{verb_phrase}}.",
    "{{work_title}} {{verb_phrase}}.",
    "Yesterday {{last_name}} {{verb_phrase}}.",
    "I heard {{first_name}} {{verb_phrase}}.",
    "{{opener}}, the {{product}} is out of stock.",
    "{{opener}} {{first_name}} {{verb_phrase}}.",
    "{{opener}}! {{first_name}} {{verb_phrase}}.",
    "{{opener}}: {{work_title}} {{verb_phrase}}.",
    "{{opener}} - call {{first_name}} before {{day_of_week}}",
    "{{opener}} the {{cap_noun}} {{verb_phrase}}.",
    "{{command}} me please",
    "{{command}} it to me again, please.",
    "{{command}} the answer for {{first_name}}",
    "{{plain_prose}}",
    "{{plain_prose}}.",
    "ok so {{plain_prose}}",
    "Ship to {{military}}",
    /* sentences opening with a word that is no name, in the places names open them */
    "{{start_word}} {{verb_phrase}}.",
    "{{start_word}} it was late, so {{first_name}} went home.",
    "{{start_word}} I asked {{person}} about it.",
    "{{start_word}}, where is it? It is at {{address}}.",
    "{{start_word}} picks: {{work_title}} and {{title_phrase}}.",
    "{{start_word}} by {{person}}",
    "{{start_word}} list: {{first_name}}, {{first_name}} and {{last_name}}",
    "{{start_word}} with {{first_name}}? Sure.",
    "{{start_word}} the {{cap_noun}} {{verb_phrase}}. {{start_word}} {{last_name}} "
    "{{verb_phrase}}.",
    "{{first_name}} {{verb_phrase}}. {{start_word}} we {{verb_phrase}}.",
    /* a script's speaker labels, alone on their line before a colon, in capitals
     * mostly; headings and roles of the same shape are no names */
    "{{speaker}}:\nWhy, how now, sir? What news?\n\n{{speaker}}:\nNone good, my lord.",
    "{{speaker}}:\n{{free}}\n\n{{speaker}}:\n{{free}}",
    "{{heading}}:\n{{free}}\n\n{{speaker}}:\n{{free}}",
    "{{heading}}:\n{{free}}",
    /* surnames alone and in lists, in the places a sentence puts them; firms named
     * after surnames beside them */
    "The {{last_name}} report was late again.",
    "Unlike {{last_name}}, she never complained.",
    "It seems that {{last_name}} knew about the plan.",
    "A film starring {{last_name}} and {{last_name}}.",
    "Produced by {{last_name}}, mixed by {{last_name}}.",
    "The best {{last_name}} album is still the first one.",
    "Former {{cap_noun}} singer {{last_name}} is back on tour.",
    "She said that {{last_name}} had called twice.",
    "Thanks to {{last_name}} for the photos.",
    "I voted for {{last_name}} in {{year}}.",
    "Authors: {{last_list}}",
    "Co-founded by {{last_list}}, the studio opened in {{year}}.",
    "The paper by {{last_list}} was cited twice.",
    "{{last_list}} founded the company in {{year}}.",
    "Our team: {{last_list}}.",
    "I work for {{firm_of_names}}.",
    "{{firm_of_names}} is a law firm in {{city}}.",
    "Call {{firm_of_names}} LLP about the lease.",
    "I bought the {{product}} at {{surname_firm}} in {{city}}.",
    "{{surname_firm}} hired {{person}} last {{day_of_week}}.",
    "Shares of {{surname_firm}} fell after {{last_name}} resigned.",
    /* nationalities, holidays and acronyms where names could stand */
    "I am {{nationality}} but my husband {{first_name}} is {{nationality}}.",
    "The {{nationality}} team beat the {{nationality}} side on {{holiday}}.",
    "{{nationality}} and {{nationality}} food are my favourites.",
    "She is {{nationality}}, and {{first_name}} is from {{country}}.",
    "On {{holiday}} we visited {{first_name}} in {{city}}.",
    "{{holiday}} falls on a {{day_of_week}} this year.",
    "Please reply {{acronym_word}}, {{first_name}}.",
    "{{acronym_word}}: the {{acronym_word}} meeting moved to {{day_of_week}}.",
    "{{acronym_word}} {{last_name}} is out until {{holiday}}.",
    "Send it {{acronym_word}} to {{person}} in {{acronym_word}}.",
    /* titles, headings and shouted lines of common words */
    "\"{{title_phrase}}\" was the second single from {{work_title}}.",
    "Her song \"{{title_phrase}}\" was written by {{person}} in {{year}}.",
    "{{title_phrase}} ({{year}}) was directed by {{last_name}}.",
    "{{title_phrase}} of the Year: {{person}}",
    "{{shout}}",
    "{{shout}} {{shout}}",
    "{{first_name}}: {{shout}}",
    "We saw {{title_phrase}} at the {{city}} festival.",
    "{{title_phrase}}\n{{person}}, {{job}}",
    "Please forward my mail to {{military}} until {{year}}.",
    /* free sentences, composed at random */
    "{{free}}",
    "{{free}} {{free}}",
    ">{{free}}",
    "{{free}}\n{{free}}",
    "{{free}} {{free}} {{free}}",
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ================================================================== helpers */

static char fold(unsigned char c)
{
    return (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

static uint64_t rnd(gen_t *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}
static size_t pick(gen_t *g, size_t n)
{
    return (size_t)(rnd(g) % n);
}
static bool chance(gen_t *g, int pct)
{
    return (int)(rnd(g) % 100) < pct;
}

/* Appends s (n bytes) to the record, as a span of type unless type is NULL. */
static void emit(gen_t *g, const char *s, size_t n, const char *type)
{
    size_t st = g->cps, bst = g->text.len;
    for (size_t i = 0; i < n; i++)
        g->cps += ((unsigned char)s[i] & 0xC0) != 0x80;
    if (buf_append(&g->text, s, n)) return; /* over the record cap: cut short */
    if (type && g->nspan < GEN_MAX_SPANS && g->cps > st) {
        g->span[g->nspan].type = type, g->span[g->nspan].st = st, g->span[g->nspan].en = g->cps;
        g->span[g->nspan].bst = bst, g->span[g->nspan++].ben = g->text.len;
    }
}
static void emits(gen_t *g, const char *s, const char *type)
{
    emit(g, s, strlen(s), type);
}

/* A name drawn from a list: mostly from the frequent ones, sometimes from all. */
static const char *name_of(gen_t *g, const names_t *l)
{
    size_t top = l->n < 3000 ? l->n : 3000;
    const char *a = l->v[chance(g, 50) ? pick(g, top) : pick(g, l->n)];
    /* in lower case such a name is a word ("the rose will grow"): not drawn there */
    if (l != &g->last && !g->lower && chance(g, 3)) return word_names[pick(g, N(word_names))];
    if (chance(g, g->made_pct)) { /* syllables and an ending of another language */
        char *b = g->synth[g->nsynth++ % GEN_SYNTH];
        size_t k = 0;
        for (int i = 0, m = 1 + (int)pick(g, 2); i < m; i++)
            k += (size_t)snprintf(b + k, sizeof g->synth[0] - k, "%s",
                                  name_syl[pick(g, N(name_syl))]);
        snprintf(b + k, sizeof g->synth[0] - k, "%s", name_end[pick(g, N(name_end))]);
        b[0] = (char)(b[0] - 32);
        return b;
    }
    if (!chance(g, g->blend_pct)) return a;
    /* one in three is no census name: the head of one joined to the tail of another
     * ("Wil" + "tze"), the shape of names from other lists and languages */
    const char *c = l->v[pick(g, l->n)];
    size_t na = strlen(a), nc = strlen(c);
    if (na < 3 || nc < 3) return a;
    size_t ka = 2 + pick(g, na - 2), kc = 1 + pick(g, nc - 2);
    char *b = g->synth[g->nsynth++ % GEN_SYNTH];
    if (ka + (nc - kc) >= sizeof g->synth[0]) return a;
    memcpy(b, a, ka);
    memcpy(b + ka, c + kc, nc - kc + 1);
    return b;
}

/* Writes name into b (cap bytes) in the form the variant asks: 0 as is, 1 lower case,
 * 2 all capitals, 3 with diacritics on its vowels. */
static void styled(char *b, size_t cap, const char *name, int variant)
{
    static const char *const acc[] = {"á", "é", "í", "ö", "ü"};
    size_t k = 0;
    bool done = false;
    for (const char *p = name; *p && k + 3 < cap; p++) {
        char c = *p;
        if (variant == 1 && c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (variant == 2 && c >= 'a' && c <= 'z') c = (char)(c - 32);
        const char *v = strchr("aeiou", c);
        if (variant == 3 && v && p != name && !done) {
            const char *a = acc[v - "aeiou"];
            memcpy(b + k, a, 2);
            k += 2;
            done = true;
            continue;
        }
        b[k++] = c;
    }
    b[k] = 0;
}

/* ================================================================== fillers */

/* An invented word of 2-3 syllables, capitalised ("Lumaxa"): a brand or a place. */
static void invented(gen_t *g, char *b, size_t cap)
{
    int n = 2 + (int)pick(g, 2);
    size_t k = 0;
    b[0] = 0;
    for (int i = 0; i < n && k + 8 < cap; i++)
        k += (size_t)snprintf(b + k, cap - k, "%s", syl[pick(g, N(syl))]);
    if (b[0] >= 'a' && b[0] <= 'z') b[0] = (char)(b[0] - 32);
}

/* A country or large region, of either list. */
static const char *country_of(gen_t *g)
{
    static const char *const lang[] = {"French", "German",  "Dutch",   "Italian", "Swedish",
                                       "Greek",  "Turkish", "English", "Spanish", "Portuguese"};
    const char *c =
        chance(g, 60) ? countries[pick(g, N(countries))] : countries2[pick(g, N(countries2))];
    if (!chance(g, 8)) return c;
    /* a country named with its language, as address generators of several locales do */
    snprintf(g->place, sizeof g->place, "%s (%s)", c, lang[pick(g, N(lang))]);
    return g->place;
}

/* A region code: a US state or two capitals of any region ("RS", "ON"). */
static void region_code(gen_t *g, char *b)
{
    if (chance(g, 50)) {
        memcpy(b, states[pick(g, N(states))], 3);
        return;
    }
    b[0] = (char)('A' + pick(g, 26));
    b[1] = (char)('A' + pick(g, 26));
    b[2] = 0;
}

/* A firm named after its founders' surnames: "A, B and C" (firm_list_pct in a
 * hundred) or "A & B". */
static void firm_of_surnames(gen_t *g, char *b, size_t cap)
{
    if (chance(g, g->firm_list_pct))
        snprintf(b, cap, "%s, %s and %s", name_of(g, &g->last), name_of(g, &g->last),
                 name_of(g, &g->last));
    else
        snprintf(b, cap, "%s & %s", name_of(g, &g->last), name_of(g, &g->last));
}

/* A firm's name in one of the shapes firms have: surnames, invented words, words and
 * a trade, initials. */
static void org_str(gen_t *g, char *b, size_t cap)
{
    char w[64];
    switch ((int)pick(g, 7)) {
    case 0:
        snprintf(b, cap, "%s %s", name_of(g, &g->last), orgs_sfx[pick(g, N(orgs_sfx))]);
        break;
    case 1:
        snprintf(b, cap, "%s-%s", name_of(g, &g->last), name_of(g, &g->last));
        break;
    case 2:
        firm_of_surnames(g, b, cap);
        break;
    case 3:
        invented(g, w, sizeof w);
        snprintf(b, cap, "%s", w);
        break;
    case 4:
        invented(g, w, sizeof w);
        snprintf(b, cap, "%s %s", w,
                 chance(g, 50) ? org_trades[pick(g, N(org_trades))]
                               : orgs_sfx[pick(g, N(orgs_sfx))]);
        break;
    case 5:
        snprintf(b, cap, "%s %s", org_words[pick(g, N(org_words))],
                 org_trades[pick(g, N(org_trades))]);
        break;
    default:
        snprintf(b, cap, "%c%c%c %s", (char)('A' + pick(g, 26)), (char)('A' + pick(g, 26)),
                 (char)('A' + pick(g, 26)), org_trades[pick(g, N(org_trades))]);
        break;
    }
}

/* A job title: from the short list, or a field and a role, capitalised as a heading. */
static void job_str(gen_t *g, char *b, size_t cap)
{
    if (chance(g, 40)) {
        snprintf(b, cap, "%s", jobs[pick(g, N(jobs))]);
        return;
    }
    snprintf(b, cap, "%s %s", job_fields[pick(g, N(job_fields))], job_roles[pick(g, N(job_roles))]);
    if (chance(g, 30) && b[0] >= 'A' && b[0] <= 'Z') b[0] = (char)(b[0] + 32);
}

/* A common word, a noun, a verb or an adjective, in lower case. */
static const char *vocab_pick(gen_t *g)
{
    int v = (int)pick(g, 3);
    return v == 0   ? vocab_noun[pick(g, N(vocab_noun))]
           : v == 1 ? vocab_verb[pick(g, N(vocab_verb))]
                    : vocab_adj[pick(g, N(vocab_adj))];
}

/* A common word into b, capitalised, or in capitals with caps. */
static void vocab_word(gen_t *g, char *b, size_t cap, bool caps)
{
    snprintf(b, cap, "%s", vocab_pick(g));
    for (char *p = b; *p; p++)
        if ((p == b || caps) && *p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
}

/* A capitalised word that opens a sentence and is no name: a small word, an opener or a
 * common word. */
static void start_word(gen_t *g, char *b, size_t cap)
{
    int v = (int)pick(g, 3);
    if (v == 0)
        snprintf(b, cap, "%s", start_small[pick(g, N(start_small))]);
    else if (v == 1)
        snprintf(b, cap, "%s", openers[pick(g, N(openers))]);
    else
        vocab_word(g, b, cap, false);
}

/* A title of common words in title case ("Keep the Light On", "Brave New Engine"): how
 * songs, films and headings are written, no name. */
static void title_phrase(gen_t *g, char *b, size_t cap)
{
    size_t k = 0;
    b[0] = 0;
    for (int i = 0, m = 2 + (int)pick(g, 4); i < m && k + 24 < cap; i++) {
        char w[32];
        if (i && i + 1 < m && chance(g, 35)) {
            snprintf(w, sizeof w, "%s", vocab_small[pick(g, N(vocab_small))]);
            if (chance(g, 60)) w[0] = (char)(w[0] - 32);
        } else
            vocab_word(g, w, sizeof w, false);
        k += (size_t)snprintf(b + k, cap - k, "%s%s", i ? " " : "", w);
    }
}

/* A title of a book, song or show in capitalised words ("The Hidden Lantern", "Lost
 * Wings at Midnight", "Echoes"): a negative for PERSON. */
static void work_str(gen_t *g, char *b, size_t cap)
{
    int v = (int)pick(g, 4);
    const char *a = cap_adj[pick(g, N(cap_adj))], *n = cap_noun[pick(g, N(cap_noun))];
    if (chance(g, g->title_pct))
        title_phrase(g, b, cap);
    else if (v == 0)
        snprintf(b, cap, "The %s %s", a, n);
    else if (v == 1)
        snprintf(b, cap, "%s %s %s", a, n, cap_tail[pick(g, N(cap_tail))]);
    else if (v == 2)
        snprintf(b, cap, "%s", n);
    else
        snprintf(b, cap, "The %s of the %s", n, cap_noun[pick(g, N(cap_noun))]);
}

/* A military postal address as US address generators write it ("USNS Name\nFPO AE
 * 12345", "PSC 1234, Box 5678\nAPO AA 12345"): a ship named after a person is an
 * address, not a name. */
static void military_str(gen_t *g, char *b, size_t cap)
{
    static const char *const po[] = {"APO", "FPO", "DPO"}, *const area[] = {"AA", "AE", "AP"};
    const char *sep = chance(g, 70) ? "\n" : " ";
    unsigned zip = (unsigned)(10000 + pick(g, 89999));
    int v = (int)pick(g, 3);
    if (v == 0)
        snprintf(b, cap, "%s %s%s%s %s %05u", fpo[pick(g, N(fpo))], name_of(g, &g->last), sep,
                 po[pick(g, 3)], area[pick(g, 3)], zip);
    else if (v == 1)
        snprintf(b, cap, "PSC %04u, Box %04u%s%s %s %05u", (unsigned)pick(g, 10000),
                 (unsigned)pick(g, 10000), sep, po[pick(g, 3)], area[pick(g, 3)], zip);
    else
        snprintf(b, cap, "Unit %04u Box %04u%s%s %s %05u", (unsigned)pick(g, 10000),
                 (unsigned)pick(g, 10000), sep, po[pick(g, 3)], area[pick(g, 3)], zip);
}

/* A capitalised word that is no name, of the kinds that stand where names do: a noun,
 * an adjective, a country, a nationality, an invented word (b, cap bytes). */
static void decoy(gen_t *g, char *b, size_t cap)
{
    int v = (int)pick(g, 7 + g->vocab_w);
    if (v >= 7)
        vocab_word(g, b, cap, false);
    else if (v == 6)
        snprintf(b, cap, "%s", acronyms[pick(g, N(acronyms))]);
    else if (v == 0)
        snprintf(b, cap, "%s", cap_noun[pick(g, N(cap_noun))]);
    else if (v == 1)
        snprintf(b, cap, "%s", cap_adj[pick(g, N(cap_adj))]);
    else if (v == 2)
        snprintf(b, cap, "%s", country_of(g));
    else if (v == 3)
        snprintf(b, cap, "%s", nations[pick(g, N(nations))]);
    else
        invented(g, b, cap);
}

/* A person's full name in one of many forms, as one PERSON span (a title, when drawn,
 * stays outside it). */
static void fill_person(gen_t *g, int sex)
{
    char b[256], f1[64], l1[96];
    const char *first = name_of(g, &g->first[sex < 0 ? (int)pick(g, 2) : sex]);
    const char *last = name_of(g, &g->last);
    int v = (int)pick(g, 13), style = chance(g, 2) ? 1 : chance(g, 4) ? 2 : chance(g, 8) ? 3 : 0;
    if (chance(g, 12)) {
        emits(g, titles[pick(g, N(titles))], NULL);
        emits(g, " ", NULL);
    }
    styled(f1, sizeof f1, first, style);
    styled(l1, sizeof l1, last, style);
    switch (v) {
    case 0:
        snprintf(b, sizeof b, "%s %c. %s", f1, f1[0], l1); /* a middle initial */
        break;
    case 1:
        snprintf(b, sizeof b, "%c. %s", f1[0], l1);
        break;
    case 2:
        snprintf(b, sizeof b, "%s %s-%s", f1, l1, name_of(g, &g->last));
        break;
    case 3:
        snprintf(b, sizeof b, "%s %s %s", f1, name_of(g, &g->first[pick(g, 2)]), l1);
        break;
    case 4:
        snprintf(b, sizeof b, "%s %s %s", f1, particles[pick(g, N(particles))], l1);
        break;
    case 5: {
        /* a surname of another language from a census surname's stem */
        size_t n = strlen(l1);
        if (n > 5) n -= 2;
        while (n > 0 && ((unsigned char)l1[n] & 0xC0) == 0x80) /* never inside a letter */
            n--;
        snprintf(b, sizeof b, "%s %.*s%s", f1, (int)n, l1, foreign_sfx[pick(g, N(foreign_sfx))]);
        break;
    }
    case 6:
        snprintf(b, sizeof b, "%s, %s", l1, f1); /* "Last, First" */
        break;
    default:
        snprintf(b, sizeof b, "%s %s", f1, l1);
        break;
    }
    if (v != 6 && chance(g, 4)) { /* a generation or a degree, inside the name */
        static const char *const sfx[] = {"Jr.", "Sr.", "II", "III", "IV", "MD", "PhD"};
        size_t k = strlen(b);
        snprintf(b + k, sizeof b - k, "%s%s", chance(g, 30) ? ", " : " ", sfx[pick(g, N(sfx))]);
    }
    emits(g, b, "PERSON");
}

static int street_name(gen_t *g, char *b, size_t cap);
static void city_str(gen_t *g, char *b, size_t cap);

/* A street address: number and street name, sometimes a unit, a direction and a
 * "City, ST zip" tail on the same or the next line, or a European form. */
static void fill_address(gen_t *g)
{
    char b[320], st[128];
    int k = 0;
    size_t cap = sizeof b;
    if (chance(g, 6)) {
        military_str(g, b, cap);
        emits(g, b, "STREET_ADDRESS");
        return;
    }
    if (chance(g, 15)) {
        k = snprintf(b, cap, "%s %u", eu_streets[pick(g, N(eu_streets))],
                     (unsigned)(1 + pick(g, 120)));
    } else {
        street_name(g, st, sizeof st);
        unsigned num =
            chance(g, 50) ? (unsigned)(100 + pick(g, 99900)) : (unsigned)(1 + pick(g, 999));
        if (chance(g, 10)) /* a unit number before the house number */
            k = snprintf(b, cap, "%u %u %s", (unsigned)(1 + pick(g, 99)), num, st);
        else
            k = snprintf(b, cap, "%u%s %s", num, chance(g, 5) ? "B" : "", st);
        if (chance(g, 8)) /* and a number after the street, as in other countries */
            k += snprintf(b + k, cap - (size_t)k, " %u", (unsigned)(1 + pick(g, 400)));
    }
    if (chance(g, 6)) {
        /* an intersection: "the corner of Kuusiku 7 and Alexander Flat", the second
         * street named without a number (a name and a street type: an address) */
        emits(g, "the corner of ", NULL);
        street_name(g, st, sizeof st);
        snprintf(b + k, cap - (size_t)k, " and %s", st);
        emits(g, b, "STREET_ADDRESS");
        return;
    }
    if (chance(g, 35)) {
        const char *u = units[pick(g, N(units))];
        k += snprintf(b + k, cap - (size_t)k, "%s%s%s%u", chance(g, 50) ? " " : ", ", u,
                      u[0] == '#' ? "" : " ", (unsigned)(1 + pick(g, 999)));
    }
    if (chance(g, 55)) {
        char cb[128], rc[3];
        city_str(g, cb, sizeof cb);
        region_code(g, rc);
        const char *city = cb;
        const char *sep = chance(g, 35) ? "\n" : ", ";
        unsigned zip = (unsigned)(1000 + pick(g, 98000));
        int v = (int)pick(g, 10);
        if (v < 5)
            snprintf(b + k, cap - (size_t)k, "%s%s, %s %05u", sep, city, rc, zip);
        else if (v < 7)
            snprintf(b + k, cap - (size_t)k, "%s%s %05u", sep, city, zip);
        else if (v == 7) /* a postal block of other countries, one part a line */
            snprintf(b + k, cap - (size_t)k, "\n%s\n, %s\n %s %05u", city, rc, country_of(g), zip);
        else if (v == 8)
            snprintf(b + k, cap - (size_t)k, "%s%s, %s", sep, city, country_of(g));
        else
            snprintf(b + k, cap - (size_t)k, "\n %s\n %s %05u", city, country_of(g), zip);
    }
    emits(g, b, "STREET_ADDRESS");
}

/* A city: a real one, or one built the way address generators build them from
 * names ("Lake Amyborough", "Port Jacobside", "Smithton"): a negative for PERSON. */
static void fill_city(gen_t *g)
{
    char b[128];
    city_str(g, b, sizeof b);
    emits(g, b, "LOCATION");
}

static void city_str(gen_t *g, char *b, size_t cap)
{
    size_t sb = cap;
    int v = (int)pick(g, 8);
    const char *nm = chance(g, 50) ? name_of(g, &g->first[pick(g, 2)]) : name_of(g, &g->last);
    char w[64];
    if (chance(g, g->city_part_pct)) {
        /* towns of Romance languages: a saint's or a given name, a particle, a word
         * ("San Leon", "Villa del Monte", "Santa Ana de Lumaxa") */
        static const char *const head[] = {"San",   "Santa",  "Villa", "Puerto", "Monte",
                                           "Porto", "Castel", "Vila",  "Sao",    "Torre"};
        static const char *const part[] = {"de", "del", "di", "do", "da", "de la", "dos"};
        invented(g, w, sizeof w);
        int u = (int)pick(g, 3);
        if (u == 0)
            snprintf(b, sb, "%s %s", head[pick(g, N(head))], nm);
        else if (u == 1)
            snprintf(b, sb, "%s %s %s", head[pick(g, N(head))], part[pick(g, N(part))], w);
        else
            snprintf(b, sb, "%s %s %s", nm, part[pick(g, N(part))], w);
    } else if (v <= 1)
        snprintf(b, sb, "%s", cities[pick(g, N(cities))]);
    else if (v == 2)
        snprintf(b, sb, "%s %s%s", city_pre[pick(g, N(city_pre))], nm,
                 city_sfx[pick(g, N(city_sfx))]);
    else if (v == 3)
        snprintf(b, sb, "%s%s", nm, city_sfx[pick(g, N(city_sfx))]);
    else if (v == 4)
        snprintf(b, sb, "%s %s", city_pre[pick(g, N(city_pre))], nm);
    else if (v == 5) /* a name alone is no town's name in the templates' data */
        snprintf(b, sb, "%s", cities[pick(g, N(cities))]);
    else {
        /* a place in no list, sometimes with a district letter ("Ostrava V") */
        invented(g, w, sizeof w);
        styled(b, sb, w, chance(g, 30) ? 3 : 0);
        if (v == 7) {
            size_t k = strlen(b);
            if (chance(g, 50))
                snprintf(b + k, sb - k, " %c", (char)('A' + pick(g, 26)));
            else
                snprintf(b + k, sb - k, " %s", city_pre[pick(g, N(city_pre))]);
        }
    }
    if (chance(g, 8)) { /* postal blocks write the town in capitals */
        char t[128];
        styled(t, sizeof t, b, 2);
        snprintf(b, sb, "%s", t);
    }
}

/* A street name: "<word or name> <type>", sometimes with a direction before it, or a
 * form of another language ("rue Name", "Namevej", "Name u."). */
static int street_name(gen_t *g, char *b, size_t cap)
{
    const char *dir = chance(g, 12) ? directions[pick(g, N(directions))] : NULL;
    int v = (int)pick(g, 5);
    char w[64];
    if (v == 4) invented(g, w, sizeof w);
    const char *nm = v == 0   ? street_words[pick(g, N(street_words))]
                     : v == 1 ? name_of(g, &g->first[pick(g, 2)])
                     : v == 4 ? w
                              : name_of(g, &g->last);
    if (chance(g, 20)) {
        if (chance(g, 50)) return snprintf(b, cap, "%s %s", street_pre[pick(g, N(street_pre))], nm);
        return snprintf(b, cap, "%s%s", nm, street_post[pick(g, N(street_post))]);
    }
    const char *sfx =
        chance(g, 50) ? street_sfx[pick(g, N(street_sfx))] : street_sfx2[pick(g, N(street_sfx2))];
    return snprintf(b, cap, "%s%s%s %s", dir ? dir : "", dir ? " " : "", nm, sfx);
}

/* A Luhn-valid 16-digit card number in groups of four. */
static void fill_card(gen_t *g)
{
    char d[17], b[32];
    d[0] = '4';
    for (int i = 1; i < 15; i++)
        d[i] = (char)('0' + pick(g, 10));
    for (int c = 0; c < 10; c++) {
        d[15] = (char)('0' + c);
        d[16] = 0;
        if (pii_luhn_valid(d, 16)) break;
    }
    snprintf(b, sizeof b, "%.4s %.4s %.4s %.4s", d, d + 4, d + 8, d + 12);
    emits(g, b, "CREDIT_CARD");
}

/* One noun phrase of a free sentence: a name (single or full), a common noun, a
 * pronoun, or a capitalised word that is no name (a decoy, a title, a firm, a town, a
 * product, a plural heading "Engines", initials and a word "ABC Business"), names
 * free_name_pct in a hundred at a sentence's start (first) and 40 elsewhere, or always
 * with name. subj picks the pronoun's case. */
static void free_np(gen_t *g, bool subj, bool first, bool name)
{
    char b[128];
    int v = name ? 0 : (int)pick(g, 100);
    if (v < (first ? g->free_name_pct : 40)) {
        if (chance(g, 40)) {
            fill_person(g, -1);
            return;
        }
        styled(b, sizeof b, name_of(g, chance(g, 50) ? &g->last : &g->first[pick(g, 2)]),
               chance(g, 4) ? 2 : 0);
        emits(g, b, "PERSON");
        if (chance(g, 10)) emits(g, "'s team", NULL);
        return;
    }
    if (v < 55) {
        snprintf(b, sizeof b, "%s ", first ? "The" : "the");
        if (chance(g, 30)) {
            strcat(b, vocab_adj[pick(g, N(vocab_adj))]);
            strcat(b, " ");
        }
        strcat(b, vocab_noun[pick(g, N(vocab_noun))]);
        emits(g, b, NULL);
        return;
    }
    if (v < 63) {
        emits(g, subj && first ? free_pron[pick(g, N(free_pron))] : free_obj[pick(g, N(free_obj))],
              NULL);
        return;
    }
    switch ((int)pick(g, 8)) {
    case 0: /* a capitalised common word, a country or a nationality */
        if (chance(g, 60))
            vocab_word(g, b, sizeof b, false);
        else
            snprintf(b, sizeof b, "%s",
                     chance(g, 50) ? country_of(g) : nations[pick(g, N(nations))]);
        emits(g, b, NULL);
        break;
    case 1:
        work_str(g, b, sizeof b);
        emits(g, b, NULL);
        break;
    case 2:
        org_str(g, b, sizeof b);
        emits(g, b, "ORGANIZATION");
        break;
    case 3:
        fill_city(g);
        break;
    case 4:
        emits(g, products[pick(g, N(products))], NULL);
        break;
    case 5: /* a plural heading or a word with a number: "Engines", "Robots-7" */
        vocab_word(g, b, sizeof b, false);
        strcat(b, chance(g, 70) ? "s" : "-7");
        emits(g, b, NULL);
        break;
    case 6: { /* initials and a common word: "ABC Business" */
        char w[32];
        vocab_word(g, w, sizeof w, false);
        snprintf(b, sizeof b, "%c%c%s %s", (char)('A' + pick(g, 26)), (char)('A' + pick(g, 26)),
                 chance(g, 50) ? "C" : "", w);
        emits(g, b, NULL);
        break;
    }
    default: /* two capitalised common words, a heading or a character ("Iron Man") */
        title_phrase(g, b, sizeof b);
        emits(g, b, NULL);
        break;
    }
}

/* A sentence composed at random from an opener, a subject, a verb, an object and a
 * prepositional phrase: names stand among words of every kind and in every place, so
 * no context word of a template decides, and capitalised words that are no names stand
 * where names do. */
static void free_sentence(gen_t *g)
{
    int v = (int)pick(g, 10);
    if (v == 0) { /* an opener before the sentence */
        emits(g, openers[pick(g, N(openers))], NULL);
        emits(g, ", ", NULL);
    } else if (v == 1) { /* an address to someone */
        free_np(g, true, true, true);
        emits(g, chance(g, 50) ? ", " : ": ", NULL);
    }
    if (chance(g, 20)) { /* a list of names: "A, B and C" */
        free_np(g, true, v >= 2, true);
        for (int i = 0, k = 1 + (int)pick(g, 3); i < k; i++) {
            emits(g, i + 1 == k ? " and " : ", ", NULL);
            free_np(g, true, false, true);
        }
    } else
        free_np(g, true, v >= 2, false);
    emits(g, " ", NULL);
    if (chance(g, 20)) {
        emits(g, verb_phrases[pick(g, N(verb_phrases))], NULL);
    } else {
        emits(g, free_verb[pick(g, N(free_verb))], NULL);
        emits(g, " ", NULL);
        free_np(g, false, false, false);
    }
    if (chance(g, 50)) {
        emits(g, " ", NULL);
        emits(g, free_prep[pick(g, N(free_prep))], NULL);
        emits(g, " ", NULL);
        free_np(g, false, false, false);
    }
    emits(g, free_end[pick(g, N(free_end))], NULL);
}

/* A date as prose and forms write it ("March 26", "Nov. 18, 2019", "3 May 2014",
 * "the 5th of June"). */
static void date_str(gen_t *g, char *b, size_t cap)
{
    const char *m = months[pick(g, N(months))];
    unsigned d = (unsigned)(1 + pick(g, 28)), y = (unsigned)(1950 + pick(g, 76));
    static const char *const th[] = {"th", "st", "nd", "rd"};
    const char *o = d % 10 < 4 && (d < 11 || d > 13) ? th[d % 10] : "th";
    switch (pick(g, 6)) {
    case 0:
        snprintf(b, cap, "%s %u", m, d);
        break;
    case 1:
        snprintf(b, cap, "%s %u, %u", m, d, y);
        break;
    case 2:
        snprintf(b, cap, "%u %s %u", d, m, y);
        break;
    case 3:
        snprintf(b, cap, "%s %u%s", m, d, o);
        break;
    case 4:
        snprintf(b, cap, "the %u%s of %s", d, o, m);
        break;
    default:
        snprintf(b, cap, "%s %u", m, y);
        break;
    }
}

/* The options of a multiple-choice question, one per line, each after a letter
 * ("A.", "B)", "(C)", "D:"): numbers, words, cities, or (persons) names. */
static void mc_options(gen_t *g, bool persons)
{
    static const char *const fmt[] = {"%c. ", "%c) ", "(%c) ", "%c: ", "%c.", "%c "};
    const char *f = fmt[pick(g, N(fmt))];
    int kind = (int)pick(g, 5);
    for (int i = 0, k = 2 + (int)pick(g, 4); i < k; i++) {
        char b[96];
        emits(g, "\n", NULL);
        snprintf(b, sizeof b, f, 'A' + i);
        emits(g, b, NULL);
        if (persons) {
            fill_person(g, -1);
        } else if (kind == 0) {
            snprintf(b, sizeof b, "%u", (unsigned)pick(g, chance(g, 50) ? 10 : 1000));
            emits(g, b, NULL);
        } else if (kind == 1) {
            emits(g, mc_words[pick(g, N(mc_words))], NULL);
        } else if (kind == 2) {
            vocab_word(g, b, sizeof b, false);
            emits(g, b, NULL);
            if (chance(g, 50)) {
                emits(g, " ", NULL);
                emits(g, vocab_pick(g), NULL);
            }
        } else if (kind == 3) {
            fill_city(g);
        } else { /* a term the gazetteer does not know ("Pliocene", "Lamivudine") */
            invented(g, b, sizeof b);
            emits(g, b, NULL);
            if (chance(g, 30)) emits(g, chance(g, 50) ? " only" : ".", NULL);
        }
    }
    /* the instruction after the options, on a line of its own */
    if (chance(g, 30)) {
        char b[64];
        snprintf(b, sizeof b, "\n%s only the letter.", commands[pick(g, N(commands))]);
        emits(g, b, NULL);
    }
}

/* Fills one placeholder; one it does not know is noted in g->unknown and writes
 * nothing (pii_gen_new refuses templates that hold one). */
static void fill(gen_t *g, const char *key, size_t n)
{
    char b[128];
#define IS(s) (n == sizeof(s) - 1 && !memcmp(key, s, n))
    if (IS("person") || IS("name"))
        fill_person(g, -1);
    else if (IS("name_female"))
        fill_person(g, 0);
    else if (IS("name_male"))
        fill_person(g, 1);
    else if (n >= 10 && !memcmp(key, "first_name", 10)) {
        styled(b, sizeof b, name_of(g, &g->first[strstr(key, "male") == key + 11]),
               chance(g, 5) ? 1 : 0);
        emits(g, b, "PERSON");
    } else if (n >= 9 && !memcmp(key, "last_name", 9)) {
        styled(b, sizeof b, name_of(g, &g->last), chance(g, 5) ? 2 : 0);
        emits(g, b, "PERSON");
    } else if (n >= 6 && !memcmp(key, "prefix", 6))
        emits(g, titles[pick(g, N(titles))], NULL);
    else if (IS("address"))
        fill_address(g);
    else if (IS("street_name")) {
        street_name(g, b, sizeof b);
        emits(g, b, "STREET_ADDRESS");
    } else if (IS("building_number")) {
        snprintf(b, sizeof b, "%u", (unsigned)(1 + pick(g, 9999)));
        emits(g, b, "STREET_ADDRESS");
    } else if (IS("secondary_address")) {
        snprintf(b, sizeof b, "%s %u", units[pick(g, 3)], (unsigned)(1 + pick(g, 999)));
        emits(g, b, "STREET_ADDRESS");
    } else if (IS("city"))
        fill_city(g);
    else if (IS("country"))
        emits(g, country_of(g), "LOCATION");
    else if (IS("organization")) {
        org_str(g, b, sizeof b);
        emits(g, b, "ORGANIZATION");
    } else if (IS("product"))
        emits(g, products[pick(g, N(products))], NULL);
    else if (IS("credit_card_number"))
        fill_card(g);
    else if (IS("phone_number")) {
        snprintf(b, sizeof b, "(%u) 555-%04u", (unsigned)(201 + pick(g, 700)),
                 (unsigned)pick(g, 10000));
        emits(g, b, "PHONE_NUMBER");
    } else if (IS("email")) {
        styled(b, sizeof b, name_of(g, &g->first[pick(g, 2)]), 1);
        strcat(b, "@example.com");
        emits(g, b, "EMAIL_ADDRESS");
    } else if (IS("iban"))
        emits(g, ibans[pick(g, N(ibans))], "IBAN_CODE");
    else if (IS("ssn")) {
        snprintf(b, sizeof b, "%03u-%02u-%04u", (unsigned)(100 + pick(g, 500)),
                 (unsigned)(10 + pick(g, 89)), (unsigned)(1000 + pick(g, 8999)));
        emits(g, b, "US_SSN");
    } else if (IS("ip_address")) {
        snprintf(b, sizeof b, "10.%u.%u.%u", (unsigned)pick(g, 256), (unsigned)pick(g, 256),
                 (unsigned)(1 + pick(g, 254)));
        emits(g, b, "IP_ADDRESS");
    } else if (IS("job")) {
        job_str(g, b, sizeof b);
        emits(g, b, NULL);
    } else if (IS("nationality") || IS("nation_woman") || IS("nation_plural"))
        emits(g, nations[pick(g, N(nations))], "NRP");
    else if (IS("day_of_week"))
        emits(g, days[pick(g, N(days))], "DATE_TIME");
    else if (IS("holiday"))
        emits(g, holidays[pick(g, N(holidays))], "DATE_TIME");
    else if (IS("acronym_word"))
        emits(g, acronyms[pick(g, N(acronyms))], NULL);
    else if (IS("state_abbr")) /* parts of a postal block, as the presidio data labels them */
        emits(g, states[pick(g, N(states))], "STREET_ADDRESS");
    else if (IS("postcode") || IS("zipcode")) {
        snprintf(b, sizeof b, "%05u", (unsigned)(1000 + pick(g, 98000)));
        emits(g, b, "STREET_ADDRESS");
    } else if (IS("age")) {
        snprintf(b, sizeof b, "%u", (unsigned)(18 + pick(g, 70)));
        emits(g, b, "AGE");
    } else if (IS("year") || IS("date_time") || IS("date_of_birth")) {
        snprintf(b, sizeof b, "%u", (unsigned)(1950 + pick(g, 70)));
        emits(g, b, "DATE_TIME");
    } else if (IS("url"))
        emits(g, "https://example.org/page", "URL");
    else if (IS("us_driver_license")) {
        snprintf(b, sizeof b, "D%07u", (unsigned)pick(g, 10000000));
        emits(g, b, "US_DRIVER_LICENSE");
    } else if (IS("person_list")) { /* a long list: windows at their token cap */
        size_t k = 6 + pick(g, 20);
        /* one separator for most of the list, as lists are written, sometimes mixed */
        static const char *const seps[] = {", ", ", ", ", ", "; ", " & ", "\n", ",\n", " and "};
        const char *sep = seps[pick(g, N(seps))];
        for (size_t i = 0; i < k; i++) {
            if (i) emits(g, chance(g, 15) ? seps[pick(g, N(seps))] : sep, NULL);
            fill_person(g, -1);
        }
    } else if (IS("date")) {
        date_str(g, b, sizeof b);
        emits(g, b, "DATE_TIME");
    } else if (IS("numbered")) {
        unsigned v = (unsigned)(1 + (chance(g, 80) ? pick(g, 12) : pick(g, 400)));
        snprintf(b, sizeof b, "%s %u", numbered[pick(g, N(numbered))], v);
        emits(g, b, NULL);
    } else if (IS("vocab_noun")) {
        emits(g, vocab_noun[pick(g, N(vocab_noun))], NULL);
    } else if (IS("small_num")) {
        snprintf(b, sizeof b, "%u", (unsigned)(2 + pick(g, 40)));
        emits(g, b, NULL);
    } else if (IS("mc_letter")) {
        b[0] = (char)('A' + pick(g, 4)), b[1] = 0;
        emits(g, b, NULL);
    } else if (IS("mc_options") || IS("mc_persons")) {
        mc_options(g, key[3] == 'p');
    } else if (IS("command")) {
        emits(g, commands[pick(g, N(commands))], NULL);
    } else if (IS("stop_word")) {
        emits(g, stop_words[pick(g, N(stop_words))], NULL);
    } else if (IS("acronym")) {
        size_t k = 2 + pick(g, 3);
        for (size_t i = 0; i < k; i++)
            b[i] = (char)('A' + pick(g, 26));
        b[k] = 0;
        emits(g, b, NULL);
    } else if (IS("first_list") || IS("last_list")) { /* "A, B, C and D", each a name */
        size_t k = 2 + pick(g, 5);
        bool first = key[0] == 'f';
        int st = chance(g, 10) ? 1 : chance(g, 5) ? 2 : 0;
        for (size_t i = 0; i < k; i++) {
            if (i)
                emits(g,
                      i + 1 == k ? (chance(g, 10)   ? " & "
                                    : chance(g, 20) ? ", and "
                                                    : " and ")
                                 : ", ",
                      NULL);
            styled(b, sizeof b, name_of(g, first ? &g->first[pick(g, 2)] : &g->last), st);
            emits(g, b, "PERSON");
        }
    } else if (IS("work_title")) {
        work_str(g, b, sizeof b);
        emits(g, b, NULL);
    } else if (IS("band")) {
        char w[64];
        int v = (int)pick(g, 4);
        if (v == 0)
            snprintf(b, sizeof b, "The %s %s", cap_adj[pick(g, N(cap_adj))],
                     cap_noun[pick(g, N(cap_noun))]);
        else if (v == 1)
            snprintf(b, sizeof b, "%s-%u", cap_noun[pick(g, N(cap_noun))],
                     (unsigned)(1 + pick(g, 999)));
        else if (v == 2)
            snprintf(b, sizeof b, "%s %s", cap_adj[pick(g, N(cap_adj))],
                     cap_noun[pick(g, N(cap_noun))]);
        else {
            invented(g, w, sizeof w);
            snprintf(b, sizeof b, "%s", w);
        }
        emits(g, b, NULL);
    } else if (IS("channel")) {
        char w[64];
        invented(g, w, sizeof w);
        if (chance(g, 50)) styled(w, sizeof w, w, 2);
        snprintf(b, sizeof b, "%s %s", w, channels[pick(g, N(channels))]);
        emits(g, b, NULL);
    } else if (IS("cap_noun"))
        emits(g, cap_noun[pick(g, N(cap_noun))], NULL);
    else if (IS("opener"))
        emits(g, openers[pick(g, N(openers))], NULL);
    else if (IS("plain_prose")) {
        for (int i = 0, k = 2 + (int)pick(g, 2); i < k; i++) {
            snprintf(b, sizeof b, "%sthe %s %s %s", i ? (chance(g, 50) ? " and " : ", ") : "",
                     plain_adj[pick(g, N(plain_adj))], plain_noun[pick(g, N(plain_noun))],
                     plain_verb[pick(g, N(plain_verb))]);
            if (!chance(g, 33)) { /* else the clause ends at its verb ("the young bird sang") */
                size_t e = strlen(b);
                snprintf(b + e, sizeof b - e, " %s", plain_tail[pick(g, N(plain_tail))]);
            }
            emits(g, b, NULL);
        }
    } else if (IS("verb_phrase"))
        emits(g, verb_phrases[pick(g, N(verb_phrases))], NULL);
    else if (IS("surname_firm")) { /* a firm named after one surname: "Russo Investments" */
        snprintf(b, sizeof b, "%s %s", name_of(g, &g->last), orgs_sfx[pick(g, N(orgs_sfx))]);
        emits(g, b, "ORGANIZATION");
    } else if (IS("firm_of_names")) { /* a firm, no person */
        firm_of_surnames(g, b, sizeof b);
        emits(g, b, "ORGANIZATION");
    } else if (IS("start_word")) {
        start_word(g, b, sizeof b);
        emits(g, b, NULL);
    } else if (IS("title_phrase")) {
        title_phrase(g, b, sizeof b);
        emits(g, b, NULL);
    } else if (IS("shout")) { /* a line in capitals of common words: no name in it */
        size_t k = 0;
        for (int i = 0, m = 3 + (int)pick(g, 5); i < m && k + 24 < sizeof b; i++) {
            char w[32];
            if (i && chance(g, 30)) {
                snprintf(w, sizeof w, "%s", vocab_small[pick(g, N(vocab_small))]);
                for (char *q = w; *q; q++)
                    *q = (char)(*q - 32);
            } else
                vocab_word(g, w, sizeof w, true);
            k += (size_t)snprintf(b + k, sizeof b - k, "%s%s", i ? " " : "", w);
        }
        snprintf(b + k, sizeof b - k, "%s", chance(g, 50) ? "!" : "?!");
        emits(g, b, NULL);
    } else if (IS("cap_adj"))
        emits(g, cap_adj[pick(g, N(cap_adj))], NULL);
    else if (IS("free"))
        free_sentence(g);
    else if (IS("speaker")) { /* a given name, a surname or both, in capitals 4 in 5 */
        char nm[160];
        const char *f = name_of(g, &g->first[pick(g, 2)]);
        if (chance(g, 25))
            snprintf(nm, sizeof nm, "%s %s", f, name_of(g, &g->last));
        else
            snprintf(nm, sizeof nm, "%s", chance(g, 60) ? f : name_of(g, &g->last));
        styled(b, sizeof b, nm, chance(g, 80) ? 2 : 0);
        emits(g, b, "PERSON");
    } else if (IS("heading"))
        emits(g, headings[pick(g, N(headings))], NULL);
    else if (IS("pet"))
        emits(g, pets[pick(g, N(pets))], NULL);
    else if (IS("military")) {
        military_str(g, b, sizeof b);
        emits(g, b, "STREET_ADDRESS");
    } else if (!g->unknown) {
        g->unknown = key, g->unknown_n = n;
    }
#undef IS
}

/* Appends literal text of a template, each capitalised word of it (not a title, not
 * in capitals) swapped with swap_pct in a hundred for another capitalised word that is
 * no name ("Hobbits" -> "Lanterns", "Vexora"): the words a template spells out are
 * negatives the labeller must not learn one by one, or it calls every capitalised
 * word of an unseen sentence a name. */
static void emit_words(gen_t *g, const char *t, size_t n)
{
    size_t i = 0, from = 0;
    while (i < n) {
        bool wst = i == 0 || !((t[i - 1] | 32) >= 'a' && (t[i - 1] | 32) <= 'z');
        bool st = wst && t[i] >= 'A' && t[i] <= 'Z';
        if (wst && t[i] >= 'a' && t[i] <= 'z' && g->ctx_pct) {
            /* a lower-case word of the template's text swapped for a common word: the
             * words around a name vary, so no one context word decides */
            size_t e = i;
            while (e < n && t[e] >= 'a' && t[e] <= 'z')
                e++;
            if (e - i >= 4 && (e == n || (unsigned char)t[e] < 0x80) && chance(g, g->ctx_pct)) {
                emit(g, t + from, i - from, NULL);
                emits(g, vocab_pick(g), NULL);
                from = e;
            }
            i = e;
            continue;
        }
        if (!st) {
            i++;
            continue;
        }
        size_t e = i + 1;
        bool low = false;
        while (e < n && (t[e] | 32) >= 'a' && (t[e] | 32) <= 'z')
            low |= t[e] >= 'a', e++;
        bool title = false;
        for (size_t q = 0; q < N(titles) && !title; q++)
            title = strlen(titles[q]) >= e - i && !strncmp(titles[q], t + i, e - i);
        /* a sentence's first word is capitalised by the grammar: it stays */
        size_t b = i;
        while (b > 0 && (t[b - 1] == ' ' || t[b - 1] == '"'))
            b--;
        bool opens = b == 0 ? g->text.len == 0 || g->text.data[g->text.len - 1] == '\n'
                            : strchr(".!?:\n", t[b - 1]) != NULL;
        if (e - i >= (opens ? (size_t)g->open_min : 4) && low && !title &&
            (e == n || (unsigned char)t[e] < 0x80) &&
            chance(g, opens ? g->swap_open_pct : g->swap_pct)) {
            char w[64];
            emit(g, t + from, i - from, NULL);
            from = e;
            i = e;
            if (chance(g, opens ? g->swap_open_name_pct
                                : g->swap_name_pct)) { /* a name stands where any word does */
                if (chance(g, g->swap_full_pct))
                    fill_person(g, -1);
                else
                    emits(g, name_of(g, chance(g, 50) ? &g->last : &g->first[pick(g, 2)]),
                          "PERSON");
                continue;
            }
            if (opens && chance(g, g->opener_vocab_pct))
                start_word(g, w, sizeof w);
            else if (opens)
                snprintf(w, sizeof w, "%s", openers[pick(g, N(openers))]);
            else
                decoy(g, w, sizeof w);
            emits(g, w, NULL);
            from = e;
        }
        i = e;
    }
    emit(g, t + from, n - from, NULL);
}

/* Appends template text, its "\\n" escapes as line breaks (templates.txt writes the
 * line breaks of postal blocks and CVs that way; the labelled sets hold real ones). */
static void emit_lit(gen_t *g, const char *t, size_t n)
{
    for (size_t i = 0; i < n;) {
        const char *e = i + 1 < n ? memmem(t + i, n - i, "\\n", 2) : NULL;
        if (!e) {
            emit_words(g, t + i, n - i);
            return;
        }
        emit_words(g, t + i, (size_t)(e - (t + i)));
        emit(g, "\n", 1, NULL);
        i = (size_t)(e + 2 - t);
    }
}

/* Expands one template line into the record. */
static void expand(gen_t *g, const char *t, size_t n)
{
    for (size_t i = 0; i < n;) {
        const char *o = i + 1 < n ? memmem(t + i, n - i, "{{", 2) : NULL;
        const char *c = o ? memmem(o + 2, (size_t)(t + n - o - 2), "}}", 2) : NULL;
        if (!o || !c) {
            emit_lit(g, t + i, n - i);
            return;
        }
        emit_lit(g, t + i, (size_t)(o - (t + i)));
        fill(g, o + 2, (size_t)(c - o - 2));
        i = (size_t)(c + 2 - t);
    }
}

/* ================================================================== lists and output */

/* Reads a census list ("NAME FREQ CUMFREQ RANK" lines, most frequent first) into l in
 * title case. */
static void names_read(names_t *l, const char *p, size_t n)
{
    size_t cap = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - p) : n, k = i;
        while (k < e && p[k] >= 'A' && p[k] <= 'Z')
            k++;
        if (k - i >= 2) {
            if (l->n == cap) {
                cap = cap ? 2 * cap : 1024;
                l->v = mem_realloc(l->v, cap * sizeof *l->v);
            }
            char *s = mem_strndup(p + i, k - i);
            for (size_t j = 1; s[j]; j++)
                s[j] = (char)(s[j] + 32);
            l->v[l->n++] = s;
        }
        i = e + 1;
    }
}

static void names_free(names_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        mem_free(l->v[i]);
    mem_free(l->v);
}

/* Writes the current record as one JSON object. */
static void record_write(FILE *out, const gen_t *g, long id, bool first)
{
    buf_t b;
    buf_init(&b, 1u << 20);
    jsonw_t w;
    jsonw_init(&w, &b);
    jsonw_obj_begin(&w);
    jsonw_key(&w, "full_text");
    jsonw_strn(&w, g->text.data ? g->text.data : "", g->text.len);
    jsonw_key(&w, "spans");
    jsonw_arr_begin(&w);
    for (int i = 0; i < g->nspan; i++) {
        jsonw_obj_begin(&w);
        jsonw_key(&w, "entity_type");
        jsonw_str(&w, g->span[i].type);
        jsonw_key(&w, "start_position");
        jsonw_int(&w, (int64_t)g->span[i].st);
        jsonw_key(&w, "end_position");
        jsonw_int(&w, (int64_t)g->span[i].en);
        jsonw_obj_end(&w);
    }
    jsonw_arr_end(&w);
    jsonw_key(&w, "template_id");
    jsonw_int(&w, id);
    jsonw_obj_end(&w);
    fprintf(out, "%s%.*s\n", first ? "[\n" : ",\n", (int)b.len, b.data);
    buf_deinit(&b);
}

/* True when fill knows every placeholder of the template lines and of the built-in
 * sentences: each line is expanded once by a probe, a copy of g with a text of its own
 * (so g's draws stay as they are); otherwise false with the first unknown one named on
 * stderr: a misspelt placeholder is an error, not text of some other kind. */
static bool placeholders_known(const gen_t *g)
{
    gen_t *p = mem_alloc(sizeof *p);
    *p = *g;
    buf_init(&p->text, GEN_MAX_TEXT);
    p->unknown = NULL;
    size_t l = 0;
    for (; !p->unknown && l < g->nl + N(own); l++) {
        buf_reset(&p->text);
        p->cps = 0, p->nspan = 0;
        if (l < g->nl)
            expand(p, g->line[l], g->llen[l]);
        else
            expand(p, own[l - g->nl], strlen(own[l - g->nl]));
    }
    if (p->unknown)
        fprintf(stderr, "pii generator: %s %zu: unknown placeholder {{%.*s}}\n",
                l <= g->nl ? "templates line" : "built-in sentence", l <= g->nl ? l : l - g->nl,
                (int)p->unknown_n, p->unknown);
    bool ok = !p->unknown;
    buf_deinit(&p->text);
    mem_free(p);
    return ok;
}

pii_gen_t *pii_gen_new(const char *tmpl, size_t tlen, const pii_census_t *census,
                       unsigned long seed)
{
    gen_t *g = mem_calloc(1, sizeof *g);
    g->rng = seed * 0x9E3779B97F4A7C15ull | 1;
    g->lower_pct = 5;
    g->made_pct = 5, g->blend_pct = 10, g->own_pct = 40, g->swap_pct = 20;
    g->swap_name_pct = 40, g->swap_open_pct = 80, g->open_min = 2, g->swap_open_name_pct = 65;
    g->vocab_w = 12, g->title_pct = 50, g->opener_vocab_pct = 60, g->city_part_pct = 10;
    g->firm_list_pct = 75, g->ctx_pct = 25, g->swap_full_pct = 15;
    g->free_pct = 10, g->free_name_pct = 55;
    names_read(&g->first[0], census->data[PII_CENSUS_FEMALE_FIRST],
               census->len[PII_CENSUS_FEMALE_FIRST]);
    names_read(&g->first[1], census->data[PII_CENSUS_MALE_FIRST],
               census->len[PII_CENSUS_MALE_FIRST]);
    names_read(&g->last, census->data[PII_CENSUS_LAST], census->len[PII_CENSUS_LAST]);
    /* template lines, numbered from 1 */
    for (size_t i = 0; i < tlen;) {
        const char *e = memchr(tmpl + i, '\n', tlen - i);
        size_t k = e ? (size_t)(e - tmpl) : tlen;
        g->line = mem_realloc(g->line, (g->nl + 1) * sizeof *g->line);
        g->llen = mem_realloc(g->llen, (g->nl + 1) * sizeof *g->llen);
        g->line[g->nl] = tmpl + i;
        g->llen[g->nl++] = k - i;
        i = k + 1;
    }
    buf_init(&g->text, GEN_MAX_TEXT);
    if (!g->nl || !g->first[0].n || !g->first[1].n || !g->last.n) {
        fprintf(stderr, "pii generator: no templates or no names to draw from\n");
        pii_gen_free(g);
        return NULL;
    }
    if (!placeholders_known(g)) {
        pii_gen_free(g);
        return NULL;
    }
    return g;
}

void pii_gen_free(pii_gen_t *g)
{
    if (!g) return;
    buf_deinit(&g->text);
    mem_free(g->line);
    mem_free(g->llen);
    names_free(&g->first[0]);
    names_free(&g->first[1]);
    names_free(&g->last);
    mem_free(g);
}

long pii_gen_templates(const pii_gen_t *g)
{
    return (long)(g->nl + N(own));
}

long pii_gen_file_templates(const pii_gen_t *g)
{
    return (long)g->nl;
}

long pii_gen_next(pii_gen_t *g)
{
    buf_reset(&g->text);
    g->cps = 0;
    g->nspan = 0;
    /* one record in twenty all in lower case, as typed in a hurry (ASCII only: the
     * byte and code point offsets stay as they are) */
    g->lower = chance(g, g->lower_pct);
    /* free_pct in a hundred records of free sentences, own_pct of the rest from the other
     * sentences of our own: ids after the templates */
    size_t t = chance(g, g->free_pct)  ? g->nl + N(own) - FREE_LINES + pick(g, FREE_LINES)
               : chance(g, g->own_pct) ? g->nl + pick(g, N(own) - FREE_LINES)
                                       : pick(g, g->nl);
    if (t < g->nl)
        expand(g, g->line[t], g->llen[t]);
    else
        expand(g, own[t - g->nl], strlen(own[t - g->nl]));
    if (g->lower)
        for (size_t i = 0; i < g->text.len; i++)
            g->text.data[i] = (char)fold((unsigned char)g->text.data[i]);
    return (long)t + 1;
}

const char *pii_gen_text(const pii_gen_t *g, size_t *len)
{
    *len = g->text.len;
    return g->text.data ? g->text.data : "";
}

size_t pii_gen_spans(const pii_gen_t *g, pii_span_t *out, size_t max)
{
    size_t k = 0;
    for (int i = 0; i < g->nspan && k < max; i++) {
        pii_type_t t;
        if (pii_type_parse(g->span[i].type, &t)) continue; /* LOCATION, NRP, ... */
        out[k++] = (pii_span_t){t, 1.0f, g->span[i].bst, g->span[i].ben};
    }
    return k;
}

int pii_gen_write(FILE *out, const char *tmpl, size_t tlen, const pii_census_t *census, long n,
                  unsigned long seed)
{
    gen_t *g = pii_gen_new(tmpl, tlen, census, seed);
    if (!g) return SY_EINVAL;
    for (long r = 0; r < n; r++) {
        long id = pii_gen_next(g);
        record_write(out, g, id, r == 0);
    }
    fputs(n ? "]\n" : "[]\n", out);
    pii_gen_free(g);
    return 0;
}
