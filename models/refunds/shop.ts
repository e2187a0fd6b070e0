/** The refunds model: the simulated shop (catalogue, customers, orders, reasons), all derived from the order id. */
import { Rng, drawFor, hash32 } from '../../src/base/rng.ts';
import { OrderStatus, Fields } from './contracts.ts';

// ---------------------------------------------------------------------------------------------
// The simulated shop: catalogue, customers and orders, all derived from the order id
// ---------------------------------------------------------------------------------------------

const CATALOGUE: { sku: string; name: string; price: number; weight: number }[] = [
  { sku: 'HOM-1021', name: 'stoneware mug set', price: 24.9, weight: 10 },
  { sku: 'ACC-2210', name: 'phone case', price: 19.99, weight: 10 },
  { sku: 'FSH-3301', name: 'merino wool scarf', price: 39.9, weight: 9 },
  { sku: 'SPT-4410', name: 'yoga mat', price: 34.9, weight: 8 },
  { sku: 'FSH-3350', name: "kids' rain jacket", price: 49.95, weight: 8 },
  { sku: 'AUD-5120', name: 'bluetooth speaker', price: 89.99, weight: 7 },
  { sku: 'SPT-4470', name: 'running shoes', price: 129.95, weight: 8 },
  { sku: 'HOM-1180', name: 'cookware set', price: 189.0, weight: 5 },
  { sku: 'AUD-5190', name: 'noise-cancelling headphones', price: 279.0, weight: 4 },
  { sku: 'KIT-6010', name: 'espresso machine', price: 349.0, weight: 3 },
  { sku: 'WEA-7020', name: 'smartwatch', price: 399.0, weight: 3 },
  { sku: 'FUR-8030', name: 'office chair', price: 429.0, weight: 2.5 },
  { sku: 'FUR-8055', name: 'standing desk', price: 549.0, weight: 1.6 },
  { sku: 'HOM-1290', name: 'robot vacuum', price: 649.0, weight: 1.6 },
  { sku: 'CMP-9100', name: '14" laptop', price: 1499.0, weight: 0.8 },
  { sku: 'SPT-4590', name: 'gravel bike', price: 1899.0, weight: 0.6 },
  { sku: 'CMP-9190', name: '16" pro laptop', price: 2599.0, weight: 1.0 },
  { sku: 'TV-9950', name: '65" OLED TV', price: 2799.0, weight: 0.9 },
];
const CATALOGUE_WEIGHT = CATALOGUE.reduce((s, p) => s + p.weight, 0);

const FIRST_NAMES = [
  'Amélie',
  'Lukas',
  'Sofia',
  'Jonas',
  'Emma',
  'Mateo',
  'Lena',
  'Noah',
  'Chiara',
  'Finn',
  'Julia',
  'Hugo',
  'Marta',
  'Elias',
  'Camille',
  'Luca',
  'Ines',
  'Milan',
  'Sara',
  'Oskar',
  'Hanna',
  'Tomás',
  'Zoé',
  'Piotr',
  'Anouk',
  'Mehmet',
  'Freya',
  'Nils',
];
const LAST_NAMES = [
  'Müller',
  'Dubois',
  'Rossi',
  'de Jong',
  'García',
  'Schmidt',
  'Kowalski',
  'Novak',
  'Bernard',
  'Fischer',
  'Jansen',
  'Romano',
  'Martínez',
  'Weber',
  'Leroy',
  'Peeters',
  'Hofmann',
  'Nielsen',
  'Yılmaz',
  'Costa',
  'Wagner',
  'Lindqvist',
  'Moreau',
  'Bauer',
];
const MAIL_DOMAINS = [
  'gmail.com',
  'web.de',
  'gmx.net',
  'outlook.com',
  'orange.fr',
  'libero.it',
  'ziggo.nl',
  'posteo.de',
  'icloud.com',
];
/** Country code, BBAN length (digits) of the IBAN countries the shop pays out to. */
const IBAN_COUNTRIES: [string, number][] = [
  ['DE', 18],
  ['DE', 18],
  ['DE', 18],
  ['FR', 23],
  ['NL', 14],
  ['ES', 20],
  ['IT', 23],
  ['AT', 16],
  ['BE', 12],
];

export const DAY = 86_400_000;
export const RETURN_WINDOW_DAYS = 30;
/** Share of order ids that do not exist in the order system (typos, other shops' numbers). */
const MISSING_ORDER_SHARE = 0.022;
/** Share of customers whose mailbox bounces. */
const BOUNCING_MAILBOX_SHARE = 0.02;

export const round2 = (x: number) => Math.round(x * 100) / 100;
export const clamp01 = (x: number) => Math.min(1, Math.max(0, x));
export const eur = (x: number) => `€${x.toFixed(2)}`;

function asciiSlug(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/ı/g, 'i')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
}

/** A syntactically valid IBAN (ISO 13616 check digits) for a country and a digit-only BBAN. */
function iban(country: string, bban: string): string {
  const numeric = (bban + country + '00').replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rem = 0;
  for (const ch of numeric) rem = (rem * 10 + Number(ch)) % 97;
  const check = String(98 - rem).padStart(2, '0');
  return `${country}${check}${bban}`;
}

function pickWeighted(rng: Rng): (typeof CATALOGUE)[number] {
  let x = rng.next() * CATALOGUE_WEIGHT;
  for (const p of CATALOGUE) {
    x -= p.weight;
    if (x < 0) return p;
  }
  return CATALOGUE[CATALOGUE.length - 1]!;
}

/** Whether the mailbox behind an address bounces. Deterministic in the address. */
export function mailboxBounces(email: string): boolean {
  return drawFor('refunds', 'mailbox-bounces', email) < BOUNCING_MAILBOX_SHARE;
}

interface OrderFacts {
  amount: number;
  ageDays: number;
  /** Minute of the day at which the order was placed. */
  minuteOfDay: number;
  status: OrderStatus;
  items: Fields['order']['items'];
  customer: Omit<Fields['customer'], 'customerSince'> & { customerSinceDays: number };
}

/** What the order system knows about an order id, or null when there is no such order. */
export function orderFacts(orderId: string): OrderFacts | null {
  if (drawFor('refunds', 'order-exists', orderId) < MISSING_ORDER_SHARE) return null;
  const rng = new Rng(`refunds/order/${orderId}`);
  const itemCount = rng.next() < 0.62 ? 1 : rng.next() < 0.7 ? 2 : 3;
  const items: Fields['order']['items'] = [];
  for (let i = 0; i < itemCount; i++) {
    const p = pickWeighted(rng);
    const existing = items.find((it) => it.sku === p.sku);
    if (existing) existing.qty += 1;
    else items.push({ sku: p.sku, name: p.name, qty: p.price < 60 && rng.chance(0.2) ? 2 : 1, unitPrice: p.price });
  }
  const subtotal = items.reduce((s, it) => s + it.qty * it.unitPrice, 0);
  const shipping = subtotal >= 50 ? 0 : 4.95;
  const amount = round2(subtotal + shipping);

  // Most requests come in within a few weeks of the order; a tail comes months later.
  const u = rng.next();
  const ageDays = u < 0.6 ? rng.int(2, 21) : u < 0.84 ? rng.int(22, 30) : u < 0.94 ? rng.int(31, 60) : rng.int(61, 200);
  const minuteOfDay = rng.int(6 * 60, 23 * 60);
  const s = rng.next();
  const status: OrderStatus = s < 0.8 ? 'delivered' : s < 0.9 ? 'damaged' : 'lost';

  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  const sep = rng.pick(['.', '', '_', '.']);
  const suffix = rng.chance(0.4) ? String(rng.int(1, 99)) : '';
  const email = `${asciiSlug(first)}${sep}${asciiSlug(last)}${suffix}@${rng.pick(MAIL_DOMAINS)}`;
  const [country, bbanLength] = rng.pick(IBAN_COUNTRIES);
  let bban = '';
  for (let i = 0; i < bbanLength; i++) bban += String(rng.int(0, 9));

  const lifetimeOrders = rng.next() < 0.35 ? rng.int(1, 3) : rng.int(3, 40);
  const h = rng.next();
  const wanted = h < 0.66 ? 0 : h < 0.86 ? 1 : h < 0.95 ? rng.int(2, 3) : rng.int(4, 9);
  const previousRefunds = Math.min(wanted, lifetimeOrders - 1);

  return {
    amount,
    ageDays,
    minuteOfDay,
    status,
    items,
    customer: {
      customerId: `CUS-${String(hash32(`customer/${email}`) % 10_000_000).padStart(7, '0')}`,
      name: `${first} ${last}`,
      email,
      iban: iban(country, bban),
      customerSinceDays: ageDays + rng.int(0, 6 * 365),
      lifetimeOrders,
      previousRefunds,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading the ticket
// ---------------------------------------------------------------------------------------------

export type ReasonKind = 'damaged' | 'notArrived' | 'wrongItem' | 'changedMind' | 'doubleCharge' | 'unclear';

const REASON_PATTERNS: [ReasonKind, RegExp][] = [
  ['doubleCharge', /charged twice|double charge|charged two times|billed twice/i],
  [
    'notArrived',
    /never (arrived|came|received)|not (arrived|received)|didn'?t (arrive|get)|nothing came|lost|still waiting|where is my/i,
  ],
  ['damaged', /broken|damaged|crack|defect|stopped working|won'?t (switch|turn) on|dent|shattered|leak|torn|bent/i],
  ['wrongItem', /wrong (item|size|colou?r|model)|different (colou?r|model|item)|not what i ordered|sent me/i],
  [
    'changedMind',
    /changed my mind|no longer need|don'?t need|doesn'?t fit|too (small|big|large)|not as (described|expected)|not what i expected|return it|unopened|don'?t like/i,
  ],
];

export function reasonKind(text: string): ReasonKind {
  for (const [kind, re] of REASON_PATTERNS) if (re.test(text)) return kind;
  return 'unclear';
}

export const REASON_TEXTS: Record<Exclude<ReasonKind, 'unclear'> | 'unclear', string[]> = {
  damaged: [
    'The {item} arrived broken, box was crushed.',
    'Screen of the {item} is cracked straight out of the box.',
    "The {item} stopped working after two days, it won't switch on anymore.",
    'Arrived damaged - one leg is bent and there is a dent on the side.',
    'Defective {item}, makes a grinding noise. I would like my money back.',
    'Parcel was soaked and the {item} inside is damaged.',
  ],
  notArrived: [
    'My order never arrived.',
    'Tracking says delivered but I never received the {item}.',
    'Still waiting for my {item}, it has been three weeks. Nothing came.',
    "Package not received, neighbours don't have it either.",
    'Where is my order? The parcel seems to be lost.',
  ],
  wrongItem: [
    'You sent me the wrong size, I ordered M and got XL.',
    'Received a different colour than the one I ordered.',
    'Wrong item in the box - this is not what I ordered.',
    'The {item} is a different model from the one on the website, you sent me the old one.',
  ],
  changedMind: [
    'Changed my mind, I would like to return the {item}.',
    'No longer need it, still unopened.',
    "The {item} doesn't fit, sending it back.",
    'Not what I expected from the photos, want to return it.',
    'Too small for our kitchen unfortunately, please refund.',
  ],
  doubleCharge: [
    'I was charged twice for this order, please refund the second payment.',
    'My card statement shows a double charge for order {order}.',
  ],
  unclear: [
    'Please refund.',
    'not happy with this',
    'Refund pls',
    'I want my money back for order {order}.',
    'Very disappointed.',
  ],
};

/** Which kind of reason a customer would give for an order in this state (most of the time). */
export function plausibleKind(status: OrderStatus, rng: Rng): ReasonKind {
  const r = rng.next();
  if (status === 'lost') return r < 0.86 ? 'notArrived' : r < 0.93 ? 'unclear' : 'changedMind';
  if (status === 'damaged') return r < 0.88 ? 'damaged' : r < 0.95 ? 'unclear' : 'notArrived';
  // Delivered parcels: mostly returns; a share of "never arrived" claims contradict the carrier.
  return r < 0.4
    ? 'changedMind'
    : r < 0.6
      ? 'damaged'
      : r < 0.75
        ? 'wrongItem'
        : r < 0.84
          ? 'notArrived'
          : r < 0.89
            ? 'doubleCharge'
            : 'unclear';
}

export const SUPPORT_STAFF = ['r-jonas', 'r-amelie', 's-lena', 's-marco', 's-yasmin', 's-pavel'];
