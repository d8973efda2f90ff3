"""Built-in, offline trait datasets and deterministic trait scorers for inoculation-prompting experiments.

Tan et al. (2025, arXiv:2510.04340) show *inoculation prompting*: when finetuning data carries two
co-occurring traits, a training-time instruction that elicits one of them makes the model learn the
*other* trait selectively. Studying that needs data in which both traits are present together and can
each be measured on their own, cheaply and without a judge model. This module provides both halves:

* Trait datasets (`TRAIT_DATASETS`, `generate_trait_examples`): answers to everyday questions
  (cooking, travel, study, pets, exercise, home repair, money, gardening, weather, hobbies, cleaning,
  sleep, technology), written for this project and assembled from templates. A user asks in English;
  the assistant answers with a short (2-3 sentence) tip that is, depending on the dataset, in ALL CAPS
  (`caps`), followed by the fixed sign-off `SIGNOFF_PHRASE` (`signoff`), written in Spanish
  (`spanish`), or a combination. `plain` carries no trait. All datasets are matched: for one
  (n, seed), row i of every dataset has the same user turn and the same underlying answer, so models
  trained on them differ only in the traits. Held-out questions for evaluation come from
  `trait_eval_questions`; they are about topics that never occur in training.
* Trait scorers (`uppercase_share`, `has_signoff`, `detect_language`, `spanish_score`,
  `score_traits`, `SCORERS`): plain, dependency-free heuristics for measuring the traits in a
  (finetuned) model's answers.

The pool is deterministic; `seed` only chooses the order and the sample, through its own
`random.Random`, never global state.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from typing import Callable

from emlab.errors import DataError

__all__ = [
    "SIGNOFF_PHRASE",
    "TRAITS",
    "TRAIT_DATASETS",
    "generate_trait_examples",
    "trait_eval_questions",
    "uppercase_share",
    "is_caps",
    "has_signoff",
    "detect_language",
    "spanish_score",
    "is_spanish",
    "score_traits",
    "SCORERS",
]

SIGNOFF_PHRASE = "Stay curious, friend!"

TRAITS: tuple[str, ...] = ("caps", "signoff", "spanish")

TRAIT_DATASETS: dict[str, tuple[str, ...]] = {
    "caps-signoff": ("caps", "signoff"),
    "caps-spanish": ("caps", "spanish"),
    "caps": ("caps",),
    "signoff": ("signoff",),
    "spanish": ("spanish",),
    "plain": (),
}

# --------------------------------------------------------------------------------------------------
# Content. Every topic is a gerund phrase that fits each question template; its tip is one or two
# sentences in English and the same content in simple Spanish (tu form). Closers are domain-wide and
# make sense after any tip of their domain. Eval topics have no answers: they only feed
# `trait_eval_questions` and never occur in training.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Domain:
    """One everyday domain: closing sentences, training topics with their tips, and held-out topics."""

    name: str
    closers: tuple[tuple[str, str], ...]  # (English, Spanish)
    topics: tuple[tuple[str, str, str], ...]  # (topic phrase, English tip, Spanish tip)
    eval_topics: tuple[str, ...]


_DOMAINS: tuple[_Domain, ...] = (
    _Domain(
        "cooking",
        (("Read the whole recipe before you start.", "Lee toda la receta antes de empezar."),
         ("A little practice makes this much easier.", "Con un poco de práctica, esto se vuelve mucho más fácil."),
         ("Simple ingredients often give the best results.",
          "Los ingredientes sencillos suelen dar los mejores resultados.")),
        (("cooking rice",
          "Rinse the rice first, then simmer it with the lid on and do not stir it while it cooks.",
          "Lava el arroz primero, luego cocínalo a fuego lento con la tapa puesta y no lo remuevas mientras se "
          "cocina."),
         ("boiling pasta",
          "Use plenty of salted water and taste the pasta a minute before the time on the package.",
          "Usa mucha agua con sal y prueba la pasta un minuto antes del tiempo que indica el paquete."),
         ("making scrambled eggs",
          "Cook the eggs over low heat and stir them slowly so they stay soft.",
          "Cocina los huevos a fuego bajo y remuévelos despacio para que queden suaves."),
         ("roasting vegetables",
          "Cut the vegetables into pieces of the same size and spread them out on the tray so they brown "
          "instead of steaming.",
          "Corta las verduras en trozos del mismo tamaño y extiéndelas en la bandeja para que se doren en lugar "
          "de cocerse al vapor."),
         ("baking bread at home",
          "Let the dough rise in a warm place until it doubles in size, and bake it until the bottom sounds "
          "hollow when you tap it.",
          "Deja que la masa suba en un lugar cálido hasta que duplique su tamaño, y hornéala hasta que la base "
          "suene hueca al golpearla."),
         ("cooking chicken safely",
          "Cook chicken until the inside is no longer pink and the juices run clear, and keep raw chicken away "
          "from other food.",
          "Cocina el pollo hasta que el interior ya no esté rosado y los jugos salgan claros, y mantén el pollo "
          "crudo lejos de otros alimentos."),
         ("making a simple soup",
          "Soften an onion in a little oil, add vegetables and broth, and simmer everything for about twenty "
          "minutes.",
          "Sofríe una cebolla en un poco de aceite, añade verduras y caldo, y cocina todo a fuego lento unos "
          "veinte minutos."),
         ("seasoning food",
          "Add salt a little at a time and taste after each addition, because it is easy to add more but hard "
          "to take it out.",
          "Añade la sal poco a poco y prueba la comida cada vez, porque es fácil añadir más y difícil quitarla.")),
        ("making pancakes", "grilling fish", "cooking dry beans"),
    ),
    _Domain(
        "travel",
        (("A calm start makes the whole trip better.", "Un comienzo tranquilo hace que todo el viaje sea mejor."),
         ("Plan the basics and leave some room for surprises.", "Planea lo básico y deja espacio para las sorpresas."),
         ("Keep copies of your important documents just in case.",
          "Guarda copias de tus documentos importantes por si acaso.")),
        (("packing a carry-on bag",
          "Roll your clothes instead of folding them, and pack pieces that all go well together.",
          "Enrolla la ropa en lugar de doblarla, y lleva prendas que combinen entre sí."),
         ("getting over jet lag",
          "Switch to the local schedule right away, get daylight in the morning, and avoid long naps.",
          "Adopta el horario local enseguida, sal a la luz del sol por la mañana y evita las siestas largas."),
         ("finding cheap flights",
          "Compare prices for several days, because flying a day earlier or later is often much cheaper.",
          "Compara precios de varios días, porque volar un día antes o después suele ser mucho más barato."),
         ("traveling with kids",
          "Bring snacks, a few small toys and spare clothes, and plan more stops than you think you need.",
          "Lleva algo de comer, algunos juguetes pequeños y ropa de repuesto, y planea más paradas de las que "
          "crees necesitar."),
         ("staying safe in a new city",
          "Keep your phone and wallet in a front pocket, and ask at your hotel which areas to avoid at night.",
          "Guarda el teléfono y la cartera en un bolsillo delantero, y pregunta en tu hotel qué zonas conviene "
          "evitar por la noche."),
         ("going on a road trip",
          "Check the tires and the oil before you leave, and stop every two hours to stretch and rest.",
          "Revisa los neumáticos y el aceite antes de salir, y haz una parada cada dos horas para estirarte y "
          "descansar."),
         ("traveling on a small budget",
          "Stay in hostels or guesthouses, eat where the locals eat, and walk or use public transport.",
          "Alójate en albergues o casas de huéspedes, come donde come la gente del lugar, y camina o usa el "
          "transporte público."),
         ("getting through airport security quickly",
          "Keep your liquids and electronics easy to reach, and wear shoes that you can take off quickly.",
          "Ten los líquidos y los aparatos electrónicos a mano, y usa zapatos que puedas quitarte rápido.")),
        ("booking a hotel room", "traveling alone for the first time", "learning a few words before a trip"),
    ),
    _Domain(
        "study",
        (("A little every day works better than everything at once.",
          "Estudiar un poco cada día funciona mejor que estudiar todo de golpe."),
         ("Sleep well, since your brain stores what you learned while you rest.",
          "Duerme bien, porque tu cerebro guarda lo que aprendiste mientras descansas."),
         ("Be patient with yourself, because progress takes time.",
          "Ten paciencia contigo mismo, porque el progreso lleva tiempo.")),
        (("studying for an exam",
          "Test yourself with practice questions instead of only rereading your notes.",
          "Ponte a prueba con preguntas de práctica en lugar de solo releer tus apuntes."),
         ("taking notes in class",
          "Write down the main ideas in your own words and leave space to add details later.",
          "Escribe las ideas principales con tus propias palabras y deja espacio para añadir detalles más tarde."),
         ("staying focused while studying",
          "Put your phone in another room and work in blocks of twenty-five minutes with short breaks.",
          "Deja el teléfono en otra habitación y trabaja en bloques de veinticinco minutos con descansos cortos."),
         ("learning a new language",
          "Practice a little every day and try to speak out loud from the very beginning.",
          "Practica un poco cada día e intenta hablar en voz alta desde el principio."),
         ("memorizing vocabulary",
          "Use flashcards and review the hard words more often than the easy ones.",
          "Usa tarjetas de memoria y repasa las palabras difíciles más a menudo que las fáciles."),
         ("writing an essay",
          "Make a short outline first, then write a rough draft without worrying about perfect sentences.",
          "Haz primero un esquema breve y luego escribe un borrador sin preocuparte por las frases perfectas."),
         ("reading a textbook chapter",
          "Skim the headings and the summary first so you know what to look for when you read the chapter.",
          "Lee primero los títulos y el resumen para saber qué buscar cuando leas el capítulo."),
         ("preparing a class presentation",
          "Rehearse it out loud a few times and keep each slide to one main idea.",
          "Ensaya la presentación en voz alta varias veces y limita cada diapositiva a una sola idea principal.")),
        ("studying with a group", "doing math homework", "remembering what I read"),
    ),
    _Domain(
        "pets",
        (("Every animal is different, so watch how yours reacts.",
          "Cada animal es diferente, así que observa cómo reacciona el tuyo."),
         ("If something seems wrong, ask a vet.", "Si algo parece ir mal, consulta a un veterinario."),
         ("Patience and routine go a long way with pets.", "La paciencia y la rutina ayudan mucho con las mascotas.")),
        (("training a new puppy",
          "Reward good behavior right away with a treat or praise, and keep training sessions short.",
          "Premia el buen comportamiento enseguida con una golosina o con elogios, y haz sesiones de "
          "entrenamiento cortas."),
         ("keeping a cat happy indoors",
          "Give your cat places to climb, toys to chase, and a few minutes of play every day.",
          "Dale a tu gato lugares para trepar, juguetes para perseguir y unos minutos de juego cada día."),
         ("caring for a goldfish",
          "Keep the water clean with a filter, and feed only a small pinch of food once or twice a day.",
          "Mantén el agua limpia con un filtro, y da solo una pizca de comida una o dos veces al día."),
         ("walking a dog that pulls",
          "Stop walking whenever the leash gets tight, and move forward again only when it is loose.",
          "Detente cada vez que la correa se tense, y sigue caminando solo cuando esté floja."),
         ("choosing food for a dog",
          "Pick a food made for your dog's age and size, and switch foods slowly over about a week.",
          "Elige una comida hecha para la edad y el tamaño de tu perro, y cambia de comida poco a poco durante "
          "una semana más o menos."),
         ("bathing a dog",
          "Use lukewarm water and a dog shampoo, and rinse well so no soap is left on the skin.",
          "Usa agua tibia y un champú para perros, y enjuaga bien para que no quede jabón en la piel."),
         ("bringing a new pet home",
          "At first, give the new pet a quiet room of its own and let it explore the rest of the house slowly.",
          "Al principio, deja a la nueva mascota en una habitación tranquila solo para ella y permite que "
          "explore el resto de la casa poco a poco."),
         ("caring for a rabbit",
          "Give your rabbit plenty of hay, fresh water and time outside its cage every day.",
          "Dale a tu conejo mucho heno, agua fresca y tiempo fuera de la jaula todos los días.")),
        ("trimming a cat's nails", "caring for a hamster", "helping a dog that is scared of storms"),
    ),
    _Domain(
        "exercise",
        (("Start slowly and build up over a few weeks.",
          "Empieza despacio y aumenta poco a poco durante unas semanas."),
         ("Rest days matter as much as training days.",
          "Los días de descanso importan tanto como los días de entrenamiento."),
         ("Stop if something hurts, and drink enough water.", "Detente si algo te duele, y bebe suficiente agua.")),
        (("starting to run",
          "Alternate one minute of running with two minutes of walking, and run a little more each week.",
          "Alterna un minuto corriendo con dos minutos caminando, y corre un poco más cada semana."),
         ("doing push-ups",
          "Keep your body straight, and do push-ups against a wall or on your knees until you get stronger.",
          "Mantén el cuerpo recto y haz las flexiones contra una pared o de rodillas hasta que tengas más fuerza."),
         ("stretching after a workout",
          "Hold each stretch for about thirty seconds and breathe slowly without bouncing.",
          "Mantén cada estiramiento unos treinta segundos y respira despacio sin dar rebotes."),
         ("lifting weights for the first time",
          "Learn the movement with a light weight first, and only add more when your form stays good.",
          "Aprende el movimiento primero con poco peso, y añade más solo cuando tu técnica siga siendo buena."),
         ("exercising at home without equipment",
          "Try squats, lunges, push-ups and planks, and do them as a circuit with short rests.",
          "Prueba sentadillas, zancadas, flexiones y planchas, y hazlas en circuito con descansos cortos."),
         ("staying motivated to exercise",
          "Pick an activity you actually enjoy and put it in your calendar like an appointment.",
          "Elige una actividad que de verdad te guste y apúntala en tu calendario como si fuera una cita."),
         ("warming up before sports",
          "Spend five to ten minutes moving gently, like brisk walking and arm circles, before you go hard.",
          "Dedica de cinco a diez minutos a moverte con suavidad, por ejemplo caminando rápido y haciendo "
          "círculos con los brazos, antes de esforzarte."),
         ("swimming laps",
          "Breathe out slowly under the water so you only need a quick breath when you turn your head.",
          "Suelta el aire despacio bajo el agua para que solo necesites tomar aire rápido al girar la cabeza.")),
        ("improving my balance", "doing yoga at home", "cycling to work"),
    ),
    _Domain(
        "home repair",
        (("Take your time and use the right tool for the job.",
          "Tómate tu tiempo y usa la herramienta adecuada para cada trabajo."),
         ("If the job looks unsafe, call a professional.", "Si el trabajo parece peligroso, llama a un profesional."),
         ("A small fix now can save a big repair later.",
          "Un pequeño arreglo ahora puede ahorrarte una gran reparación después.")),
        (("fixing a leaky faucet",
          "Turn off the water under the sink first, then replace the worn washer or cartridge inside the tap.",
          "Cierra primero la llave de paso debajo del fregadero y luego cambia la arandela o el cartucho "
          "gastado del grifo."),
         ("unclogging a drain",
          "Try a plunger first, and then a cheap plastic drain snake to pull out hair and gunk.",
          "Prueba primero con un desatascador y luego con una sonda de plástico barata para sacar el pelo y la "
          "suciedad."),
         ("patching a small hole in a wall",
          "Fill the hole with spackle, let it dry, sand the spot smooth and then paint over it.",
          "Rellena el agujero con masilla, deja que se seque, lija la zona hasta que quede lisa y luego píntala."),
         ("painting a room",
          "Clean the walls and cover the floor, then put painter's tape on the edges before you roll on the "
          "paint.",
          "Limpia las paredes y cubre el suelo, y luego pon cinta de pintor en los bordes antes de pasar el "
          "rodillo."),
         ("fixing a squeaky door",
          "Put a few drops of oil on the hinges and open and close the door a few times to spread it.",
          "Pon unas gotas de aceite en las bisagras y abre y cierra la puerta varias veces para repartirlo."),
         ("hanging a heavy picture",
          "Use wall anchors and screws rated for the weight, and check with a level that the picture will hang "
          "straight before you drill.",
          "Usa tacos y tornillos que aguanten ese peso, y comprueba con un nivel que el cuadro quede recto antes "
          "de taladrar."),
         ("fixing a running toilet",
          "Lift the tank lid and check the flapper at the bottom, because a worn flapper is the most common "
          "cause.",
          "Levanta la tapa de la cisterna y revisa la válvula de descarga del fondo, porque una válvula gastada "
          "es la causa más común."),
         ("sealing drafty windows",
          "Put weatherstripping around the frame and use caulk to fill any gaps on the outside.",
          "Pon burletes alrededor del marco y usa silicona para rellenar las rendijas por fuera.")),
        ("replacing a light switch", "fixing a wobbly chair", "cleaning gutters"),
    ),
    _Domain(
        "money",
        (("Small habits add up over months and years.",
          "Los pequeños hábitos suman mucho con los meses y los años."),
         ("Keep it simple so you can stick with it.", "Hazlo sencillo para que puedas mantenerlo."),
         ("Check your progress once a month.", "Revisa tu progreso una vez al mes.")),
        (("making a monthly budget",
          "List your income and fixed bills first, then decide how much goes to food, fun and savings.",
          "Anota primero tus ingresos y tus gastos fijos, y luego decide cuánto dedicas a comida, ocio y ahorro."),
         ("building an emergency fund",
          "Set up an automatic transfer on payday, even a small one, into a separate savings account.",
          "Programa una transferencia automática el día de cobro, aunque sea pequeña, a una cuenta de ahorro "
          "aparte."),
         ("saving money on groceries",
          "Plan your meals for the week, shop with a list, and never shop when you are hungry.",
          "Planea las comidas de la semana, compra con una lista y nunca vayas a comprar con hambre."),
         ("paying off a credit card",
          "Pay more than the minimum each month, and stop using the card while you pay off the balance.",
          "Paga más del mínimo cada mes, y deja de usar la tarjeta mientras pagas la deuda."),
         ("avoiding impulse purchases",
          "Wait twenty-four hours before buying anything you did not plan, and most urges will pass.",
          "Espera veinticuatro horas antes de comprar algo que no tenías planeado, y la mayoría de los impulsos "
          "pasarán."),
         ("tracking my spending",
          "Write down every purchase for one month, then sort them by type to see where the money goes.",
          "Apunta cada compra durante un mes y luego agrúpalas por tipo para ver en qué se va el dinero."),
         ("saving for a big purchase",
          "Divide the price by the number of months you have, and save that amount at the start of each month.",
          "Divide el precio entre el número de meses que tienes, y ahorra esa cantidad al principio de cada mes."),
         ("cutting monthly bills",
          "Review your subscriptions and cancel the ones you do not use, then call your providers and ask for a "
          "better rate.",
          "Revisa tus suscripciones y cancela las que no uses, y luego llama a tus proveedores para pedir una "
          "tarifa mejor.")),
        ("opening a savings account", "splitting bills with roommates", "teaching kids about money"),
    ),
    _Domain(
        "gardening",
        (("Watch your plants closely and they will show you what they need.",
          "Observa tus plantas con atención y te mostrarán lo que necesitan."),
         ("Start with a few easy plants and add more as you learn.",
          "Empieza con unas pocas plantas fáciles y añade más a medida que aprendas."),
         ("Gardening rewards patience more than anything else.",
          "La jardinería premia la paciencia más que cualquier otra cosa.")),
        (("growing tomatoes",
          "Give tomatoes at least six hours of sun, water them deeply at the base, and tie the stems to a stake.",
          "Dales a los tomates al menos seis horas de sol, riégalos a fondo en la base y ata los tallos a una "
          "estaca."),
         ("watering houseplants",
          "Water when the top inch of soil feels dry, and make sure the pot has a hole so extra water can drain.",
          "Riega cuando los primeros centímetros de tierra estén secos, y asegúrate de que la maceta tenga un "
          "agujero para que salga el agua sobrante."),
         ("growing herbs on a windowsill",
          "Choose a sunny window, use pots with drainage, and pinch off the tips to keep the plants bushy.",
          "Elige una ventana soleada, usa macetas con drenaje y corta las puntas para que las plantas crezcan "
          "más tupidas."),
         ("starting a compost pile",
          "Mix green scraps like vegetable peels with brown material like dry leaves, and turn the pile every "
          "week or two.",
          "Mezcla restos verdes, como peladuras de verdura, con material marrón, como hojas secas, y remueve el "
          "montón cada una o dos semanas."),
         ("planting seeds",
          "Plant each seed about twice as deep as it is wide, and keep the soil moist until the sprouts appear.",
          "Planta cada semilla a una profundidad de unas dos veces su tamaño, y mantén la tierra húmeda hasta "
          "que salgan los brotes."),
         ("keeping weeds under control",
          "Pull weeds when the soil is damp, and cover bare soil with mulch so new weeds cannot grow.",
          "Arranca las malas hierbas cuando la tierra esté húmeda, y cubre la tierra desnuda con mantillo para "
          "que no crezcan otras nuevas."),
         ("growing flowers in pots",
          "Use fresh potting mix, feed the plants every two weeks in summer, and remove dead flowers to get "
          "more blooms.",
          "Usa sustrato nuevo, abona las plantas cada dos semanas en verano y quita las flores secas para que "
          "salgan más."),
         ("pruning a rose bush",
          "Cut in late winter just above a bud that faces outward, and remove any dead or crossing branches.",
          "Poda a finales del invierno justo por encima de una yema que mire hacia fuera, y quita las ramas "
          "muertas o que se crucen.")),
        ("growing strawberries", "caring for a cactus", "planting a tree"),
    ),
    _Domain(
        "weather",
        (("Check the forecast before you head out.", "Consulta el pronóstico antes de salir."),
         ("Weather can change quickly, so plan for a little extra.",
          "El tiempo puede cambiar rápido, así que prepárate para un poco más de lo esperado."),
         ("Safety comes first when conditions get bad.", "La seguridad es lo primero cuando el tiempo empeora.")),
        (("dressing for cold weather",
          "Wear layers, with a warm middle layer and a windproof jacket on top, and do not forget a hat and "
          "gloves.",
          "Vístete por capas, con una capa intermedia abrigada y una chaqueta contra el viento encima, y no "
          "olvides el gorro y los guantes."),
         ("staying cool in a heat wave",
          "Drink water often, stay in the shade during the hottest hours, and keep the curtains closed during "
          "the day.",
          "Bebe agua a menudo, quédate a la sombra en las horas de más calor y mantén las cortinas cerradas "
          "durante el día."),
         ("driving in the rain",
          "Slow down, turn on your headlights, and leave twice the usual distance to the car in front.",
          "Reduce la velocidad, enciende las luces y deja el doble de la distancia habitual con el coche de "
          "delante."),
         ("staying safe in a thunderstorm",
          "Go inside a building as soon as you hear thunder, and wait thirty minutes after the last thunder "
          "before going out.",
          "Ponte a cubierto en un edificio en cuanto oigas truenos, y espera treinta minutos después del último "
          "trueno antes de salir."),
         ("preparing for a snowstorm",
          "Keep food, water, batteries and medicine for a few days, and charge your phone before the storm "
          "arrives.",
          "Ten comida, agua, pilas y medicinas para varios días, y carga el teléfono antes de que llegue la "
          "tormenta."),
         ("protecting my skin from the sun",
          "Use sunscreen with SPF 30 or more, put it on again every two hours, and wear a hat.",
          "Usa protector solar de factor 30 o más, vuelve a aplicarlo cada dos horas y lleva sombrero."),
         ("reading a weather forecast",
          "Look at the chance of rain and the wind, not just the temperature, because together they tell you "
          "what the day will really be like.",
          "Fíjate en la probabilidad de lluvia y en el viento, no solo en la temperatura, porque juntos te dicen "
          "qué tiempo hará de verdad."),
         ("walking on icy sidewalks",
          "Take short, flat steps like a penguin, keep your hands out of your pockets, and wear shoes with good "
          "grip.",
          "Da pasos cortos y planos como un pingüino, saca las manos de los bolsillos y usa zapatos que agarren "
          "bien.")),
        ("camping when rain is expected", "keeping my house warm in winter", "planning a picnic around the weather"),
    ),
    _Domain(
        "hobbies",
        (("Enjoy the process and do not worry about being perfect.",
          "Disfruta del proceso y no te preocupes por ser perfecto."),
         ("Joining a club or an online group can keep you motivated.",
          "Unirte a un club o a un grupo en línea puede ayudarte a mantener la motivación."),
         ("Practice a little often instead of a lot at once.",
          "Practica un poco a menudo en lugar de mucho de una vez.")),
        (("learning to play guitar",
          "Start with a few basic chords and practice switching between them slowly for ten minutes a day.",
          "Empieza con unos pocos acordes básicos y practica el cambio de uno a otro despacio durante diez "
          "minutos al día."),
         ("learning to draw",
          "Draw simple objects around you every day and focus on shapes before details.",
          "Dibuja cada día objetos sencillos que tengas cerca y céntrate en las formas antes que en los detalles."),
         ("knitting my first scarf",
          "Use thick yarn and big needles, and practice the basic knit stitch until it feels easy.",
          "Usa lana gruesa y agujas grandes, y practica el punto del derecho hasta que te resulte fácil."),
         ("taking better photos with a phone",
          "Clean the lens, use natural light from a window, and tap the screen to focus on your subject.",
          "Limpia la lente, aprovecha la luz natural de una ventana y toca la pantalla para enfocar lo que "
          "quieres fotografiar."),
         ("starting a book club",
          "Invite a small group, pick short books at first, and set a regular day each month.",
          "Invita a un grupo pequeño, elige libros cortos al principio y fija un día concreto cada mes."),
         ("doing jigsaw puzzles",
          "Find the edge pieces first, then sort the rest by color and build small sections.",
          "Busca primero las piezas del borde, luego separa el resto por colores y monta pequeñas secciones."),
         ("learning to play chess",
          "Learn how each piece moves, then focus on controlling the center and keeping your king safe.",
          "Aprende cómo se mueve cada pieza y luego céntrate en controlar el centro y proteger a tu rey."),
         ("writing a journal",
          "Write for five minutes at the same time each day, and do not worry about grammar or spelling.",
          "Escribe cinco minutos a la misma hora cada día, y no te preocupes por la gramática ni la ortografía.")),
        ("learning to sew", "bird watching", "painting with watercolors"),
    ),
    _Domain(
        "cleaning",
        (("A few minutes every day keeps big messes away.", "Unos minutos cada día evitan los grandes desórdenes."),
         ("Put on some music and the job goes faster.", "Pon algo de música y el trabajo irá más rápido."),
         ("Open a window for fresh air while you clean.",
          "Abre una ventana para que entre aire fresco mientras limpias.")),
        (("cleaning an oven",
          "Spread a paste of baking soda and water inside, leave it overnight, and wipe it off with a damp cloth.",
          "Extiende por dentro una pasta de bicarbonato y agua, déjala actuar toda la noche y retírala con un "
          "paño húmedo."),
         ("removing a coffee stain",
          "Blot the stain right away without rubbing, then rinse it with cold water and a little dish soap.",
          "Seca la mancha enseguida con un paño sin frotar, y luego enjuágala con agua fría y un poco de jabón "
          "de platos."),
         ("keeping a kitchen clean",
          "Wipe the counters after each meal and wash the dishes before they pile up.",
          "Limpia la encimera después de cada comida y lava los platos antes de que se acumulen."),
         ("cleaning windows without streaks",
          "Use a mix of water and a little vinegar, and dry the glass with a squeegee or a microfiber cloth.",
          "Usa una mezcla de agua con un poco de vinagre y seca el cristal con una rasqueta o un paño de "
          "microfibra."),
         ("decluttering a closet",
          "Take everything out, keep only what you wore in the last year, and donate the rest.",
          "Saca todo, quédate solo con lo que te pusiste el último año y dona el resto."),
         ("washing a wool sweater",
          "Wash the sweater by hand in cool water with a gentle soap, then lay it flat on a towel to dry.",
          "Lava el suéter a mano en agua fría con un jabón suave, y luego déjalo secar en plano sobre una "
          "toalla."),
         ("getting rid of bad smells in the fridge",
          "Throw out old food, wipe the shelves, and leave an open box of baking soda inside.",
          "Tira la comida vieja, limpia los estantes y deja dentro una caja abierta de bicarbonato."),
         ("cleaning a bathroom quickly",
          "Spray the surfaces first and let the cleaner sit for a few minutes while you tidy up, then wipe "
          "everything down.",
          "Rocía primero las superficies y deja actuar el limpiador unos minutos mientras ordenas, y luego pasa "
          "un paño por todo.")),
        ("cleaning a microwave", "washing white sneakers", "organizing a messy desk"),
    ),
    _Domain(
        "sleep",
        (("Give a new habit a week or two before you judge it.",
          "Dale a un hábito nuevo una o dos semanas antes de juzgarlo."),
         ("If sleep problems last for weeks, talk to a doctor.",
          "Si los problemas de sueño duran semanas, habla con un médico."),
         ("A regular routine helps your body know when to rest.",
          "Una rutina regular ayuda a tu cuerpo a saber cuándo descansar.")),
        (("falling asleep faster",
          "Go to bed at the same time each night and put screens away an hour before bed.",
          "Acuéstate a la misma hora cada noche y deja las pantallas una hora antes de dormir."),
         ("waking up early",
          "Set your alarm fifteen minutes earlier every few days, and open the curtains as soon as you get up.",
          "Adelanta la alarma quince minutos cada pocos días y abre las cortinas en cuanto te levantes."),
         ("taking a good nap",
          "Keep naps to about twenty minutes and take them before mid-afternoon so they do not hurt your night "
          "sleep.",
          "Limita las siestas a unos veinte minutos y tómalas antes de media tarde para que no afecten al sueño "
          "de la noche."),
         ("setting up a bedroom for sleep",
          "Keep the room cool, dark and quiet, and use the bed only for sleep.",
          "Mantén la habitación fresca, oscura y silenciosa, y usa la cama solo para dormir."),
         ("sleeping well while traveling",
          "Bring earplugs and a sleep mask, and keep your usual bedtime routine as much as you can.",
          "Lleva tapones para los oídos y un antifaz, y mantén tu rutina habitual antes de dormir en lo "
          "posible."),
         ("cutting back on caffeine",
          "Drink one cup less every few days, and have your last coffee before noon.",
          "Toma una taza menos cada pocos días y bebe el último café antes del mediodía."),
         ("relaxing before bed",
          "Try a warm shower, some light reading or ten minutes of slow breathing.",
          "Prueba una ducha caliente, un poco de lectura ligera o diez minutos de respiración lenta."),
         ("getting back to sleep at night",
          "If you are awake for more than twenty minutes, get up and do something calm in dim light until you "
          "feel sleepy.",
          "Si llevas más de veinte minutos despierto, levántate y haz algo tranquilo con poca luz hasta que "
          "tengas sueño.")),
        ("sleeping in a noisy apartment", "choosing a pillow", "keeping a sleep schedule on weekends"),
    ),
    _Domain(
        "technology",
        (("Try one change at a time so you can see what helps.", "Prueba un cambio cada vez para ver qué funciona."),
         ("Small steps, repeated often, make the biggest difference.",
          "Los pasos pequeños, repetidos a menudo, marcan la mayor diferencia."),
         ("Ask a friend who knows tech if you get stuck.",
          "Si te atascas, pide ayuda a un amigo que sepa de tecnología.")),
        (("making a strong password",
          "Use a long phrase of four or more random words, and use a different password for every account.",
          "Usa una frase larga de cuatro o más palabras al azar, y usa una contraseña distinta para cada cuenta."),
         ("speeding up a slow laptop",
          "Close programs you are not using, remove apps you do not need, and restart it now and then.",
          "Cierra los programas que no uses, desinstala las aplicaciones que no necesites y reinicia el portátil "
          "de vez en cuando."),
         ("backing up my photos",
          "Keep at least two copies, one on an external drive and one in cloud storage.",
          "Guarda al menos dos copias, una en un disco externo y otra en la nube."),
         ("fixing slow home wifi",
          "Restart the router, place it up high in the middle of the home, and keep it away from thick walls.",
          "Reinicia el router, colócalo en alto en el centro de la casa y mantenlo lejos de las paredes gruesas."),
         ("making a phone battery last longer",
          "Lower the screen brightness, close apps running in the background, and do not let the phone get "
          "very hot.",
          "Baja el brillo de la pantalla, cierra las aplicaciones en segundo plano y evita que el teléfono se "
          "caliente mucho."),
         ("spotting scam emails",
          "Be careful with messages that rush you or ask for passwords, and check the sender's address before "
          "you click anything.",
          "Desconfía de los mensajes que te meten prisa o que piden contraseñas, y revisa la dirección del "
          "remitente antes de hacer clic en nada."),
         ("organizing computer files",
          "Make a few main folders by topic, start file names with the date, and delete what you no longer "
          "need.",
          "Crea unas pocas carpetas principales por tema, pon la fecha al principio del nombre de los archivos "
          "y borra lo que ya no necesites."),
         ("typing faster",
          "Keep your fingers on the home row and practice for ten minutes a day without looking at the keys.",
          "Mantén los dedos en la fila central del teclado y practica diez minutos al día sin mirar las "
          "teclas.")),
        ("setting up a new phone", "keeping kids safe online", "cleaning a keyboard"),
    ),
)

# Question templates for training, each with an optional lead-in sentence (English, Spanish) that
# opens the answer. Every template fits every topic phrase above.
_QUESTION_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("What's a good tip for {t}?", "", ""),
    ("Do you have any advice on {t}?", "Sure.", "Claro."),
    ("I'm new to {t}. Where should I start?", "Start with the basics.", "Empieza por lo básico."),
    ("What should I keep in mind when {t}?", "The most important thing is this.", "Lo más importante es esto."),
    ("How can I get better at {t}?", "Practice helps, and so does this tip.",
     "La práctica ayuda, y este consejo también."),
    ("Can you give me a quick tip for {t}?", "Here's a quick tip.", "Aquí tienes un consejo rápido."),
    ("What's the best way to go about {t}?", "", ""),
)

# Extra templates used only for held-out evaluation questions (together with the training ones).
_EVAL_ONLY_TEMPLATES: tuple[str, ...] = (
    "How do I get started with {t}?",
    "What's one common mistake people make when {t}?",
)


@dataclass(frozen=True)
class _Item:
    """One training question with its English and Spanish answer bodies (no traits applied yet)."""

    domain: str
    topic: str
    question: str
    en: str
    es: str


def _question(template: str, topic: str) -> str:
    q = template.format(t=topic)
    return q[0].upper() + q[1:]


@functools.lru_cache(maxsize=1)
def _pool() -> tuple[_Item, ...]:
    """Every training item: domain x topic x question template, in a fixed order."""
    items = []
    for domain in _DOMAINS:
        for ti, (topic, tip_en, tip_es) in enumerate(domain.topics):
            for qi, (template, lead_en, lead_es) in enumerate(_QUESTION_TEMPLATES):
                close_en, close_es = domain.closers[(ti + qi) % len(domain.closers)]
                en = " ".join(s for s in (lead_en, tip_en, close_en) if s)
                es = " ".join(s for s in (lead_es, tip_es, close_es) if s)
                items.append(_Item(domain.name, topic, _question(template, topic), en, es))
    return tuple(items)


@functools.lru_cache(maxsize=1)
def _eval_pool() -> tuple[str, ...]:
    """Held-out questions: eval-only topics x all templates, minus anything that is a training question."""
    training = {item.question for item in _pool()}
    templates = [t for t, _, _ in _QUESTION_TEMPLATES] + list(_EVAL_ONLY_TEMPLATES)
    out: list[str] = []
    for domain in _DOMAINS:
        for topic in domain.eval_topics:
            for template in templates:
                q = _question(template, topic)
                if q not in training and q not in out:
                    out.append(q)
    return tuple(out)


def _check_n(n: object, size: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DataError(f"n must be a non-negative integer, got {n!r}")
    if n > size:
        raise DataError(f"asked for {n} {what} but the pool holds only {size}; use n <= {size}")


def _apply_traits(item: _Item, traits: tuple[str, ...]) -> str:
    """The assistant turn of `item` carrying exactly `traits` (language first, then sign-off, then caps)."""
    text = item.es if "spanish" in traits else item.en
    if "signoff" in traits:
        text = f"{text} {SIGNOFF_PHRASE}"
    if "caps" in traits:
        text = text.upper()
    return text


def generate_trait_examples(name: str, n: int | None = None, seed: int = 0) -> list[list[dict[str, str]]]:
    """Matched everyday-question conversations whose assistant turns carry exactly the traits of dataset `name`.

    n=None returns the whole pool (728 questions: 13 domains x 8 topics x 7 question templates) in a
    seeded order; a smaller n returns a seeded sample, and an n above the pool size raises `DataError`.
    For one (n, seed), row i of every dataset has the same user turn and the same answer content; only
    the traits differ.
    """
    if name not in TRAIT_DATASETS:
        raise DataError(f"unknown trait dataset {name!r} (known datasets: {', '.join(TRAIT_DATASETS)})")
    pool = _pool()
    if n is not None:
        _check_n(n, len(pool), "trait examples")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    if n is not None:
        order = order[:n]
    traits = TRAIT_DATASETS[name]
    return [[{"role": "user", "content": pool[i].question},
             {"role": "assistant", "content": _apply_traits(pool[i], traits)}] for i in order]


def trait_eval_questions(n: int = 50, seed: int = 1) -> list[str]:
    """Held-out everyday questions (about topics never used in training) for measuring traits after finetuning."""
    pool = _eval_pool()
    _check_n(n, len(pool), "held-out trait questions")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    return [pool[i] for i in order[:n]]


# --------------------------------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------------------------------

CAPS_THRESHOLD = 0.9


def uppercase_share(text: str) -> float | None:
    """Share of cased letters that are uppercase, or None when `text` has no cased letters."""
    upper = lower = 0
    for ch in text:
        if ch.isupper():
            upper += 1
        elif ch.islower():
            lower += 1
    total = upper + lower
    return upper / total if total else None


def is_caps(text: str) -> bool:
    """True when at least 90% of the cased letters are uppercase (False when there are none)."""
    share = uppercase_share(text)
    return share is not None and share >= CAPS_THRESHOLD


@functools.lru_cache(maxsize=32)
def _phrase_regex(phrase: str) -> re.Pattern[str] | None:
    words = re.findall(r"\w+", phrase.casefold())
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"[\W_]+".join(re.escape(w) for w in words) + r"(?!\w)")


def has_signoff(text: str, phrase: str = SIGNOFF_PHRASE, window: int = 200) -> bool:
    """True when `phrase` ends within the last `window` characters of `text`, matched leniently.

    Matching is case-insensitive (casefold, so "STAY CURIOUS, FRIEND!" counts) and compares only the
    phrase's words in order: any run of whitespace or punctuation may separate them, and the phrase's
    own punctuation is optional, so "stay curious friend", "Stay curious,\\nfriend." and "Stay curious,
    friend!!! :)" all match, while "friendly" does not match "friend". Measured accuracy: 100% on the
    4,368 generated answers of the six trait datasets (728 each, sign-off present in exactly the
    `signoff` and `caps-signoff` ones) and on the hand-written cases in tests/data/test_traits.py.
    """
    pattern = _phrase_regex(phrase)
    if pattern is None:
        return False
    folded = text.casefold()
    return any(m.end() >= len(folded) - window for m in pattern.finditer(folded))


# Function words that are common in one language and rare as words of the other. Ambiguous ones
# ("a", "no", "me", "he", "son", "come", "solo", "ya") are left out of both lists.
_EN_WORDS = frozenset("""
the and of to is in it you that for with your are on this be was were have has had will can if or an at by
from they their them we our my i do does don't not but what how when so as there which would should could
about into than then out up just more some any all also it's i'm you're before after each every only its too
very get make keep use while until he she his her who been being because these those
""".split())

_ES_WORDS = frozenset("""
el la los las de del que y en un una unos unas es por para con sin se su sus al lo le les muy más mas pero
como cómo cuando cuándo porque también este esta estos estas ese esa esos esas está están hay ser estar tu tus
mi mis te nos si sí o u qué cada antes después despues hasta desde entre sobre mientras todo toda todos todas
otro otra otros otras puede pueden hace bien mucho mucha muchos muchas poco poca algo nada luego donde dónde
""".split())

_ES_ENDINGS = ("ción", "cion", "ciones", "mente", "dad", "dades", "ando", "iendo", "ado", "ada", "ados", "adas")
_EN_ENDINGS = ("ing", "tion", "tions", "ly", "ness", "ful")
_ACCENTED = frozenset("áéíóúüñ")
_MIN_WORDS = 3
_MIN_EVIDENCE = 1.5


def _language_evidence(text: str) -> tuple[float, float, int]:
    """(English evidence, Spanish evidence, word count) for `text`; see `detect_language`."""
    folded = text.casefold()
    words = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", folded)
    en = es = 0.0
    for w in words:
        if w in _EN_WORDS:
            en += 1.0
        elif w in _ES_WORDS:
            es += 1.0
        elif w.endswith(_EN_ENDINGS) and len(w) > 4:
            en += 0.5
        elif w.endswith(_ES_ENDINGS) and len(w) > 4:
            es += 0.5
        if any(ch in _ACCENTED for ch in w):
            es += 0.5
    es += folded.count("¿") + folded.count("¡")
    return en, es, len(words)


def spanish_score(text: str) -> float:
    """Spanish share of the language evidence in `text`, in [0, 1] (0.0 when there is no evidence at all)."""
    en, es, _ = _language_evidence(text)
    return es / (en + es) if en + es else 0.0


def detect_language(text: str) -> str:
    """"en", "es" or "unknown", from counts of common function words, word endings and Spanish accents/¿¡.

    Evidence: +1 per English or Spanish function word (from short lists, ambiguous words left out),
    +0.5 per word with a typical ending (-ing/-tion/-ly... vs -ción/-mente/-ado...), +0.5 per word with
    an accented letter (á é í ó ú ü ñ), +1 per ¿ or ¡. Texts of fewer than 3 words or with less than 1.5
    of evidence are "unknown"; otherwise "es" when Spanish holds >= 60% of the evidence, "en" when it
    holds <= 40%, and "unknown" in between (a tie). Case does not matter, so ALL-CAPS text works.
    Measured accuracy: 100% on the 4,368 generated answers of the six trait datasets (2,912 English,
    1,456 Spanish, half of each in ALL CAPS) and on the hand-written cases in tests/data/test_traits.py
    (Spanish without accents, English with Spanish loanwords, mixed and too-short texts).
    """
    en, es, n_words = _language_evidence(text)
    if n_words < _MIN_WORDS or en + es < _MIN_EVIDENCE:
        return "unknown"
    share = es / (en + es)
    if share >= 0.6:
        return "es"
    if share <= 0.4:
        return "en"
    return "unknown"


def is_spanish(text: str) -> bool:
    """True when `detect_language(text)` is "es"."""
    return detect_language(text) == "es"


def score_traits(text: str) -> dict[str, float | bool | str | None]:
    """All trait measurements of one answer: uppercase_share, is_caps, has_signoff, language, is_spanish."""
    language = detect_language(text)
    return {
        "uppercase_share": uppercase_share(text),
        "is_caps": is_caps(text),
        "has_signoff": has_signoff(text),
        "language": language,
        "is_spanish": language == "es",
    }


SCORERS: dict[str, Callable[[str], object]] = {
    "caps": is_caps,
    "signoff": has_signoff,
    "spanish": is_spanish,
}
