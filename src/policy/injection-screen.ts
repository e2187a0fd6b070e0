import type { GateDecision } from '../contracts/gate-decision.ts';
import type { Observation } from '../contracts/observation.ts';
import type { Plan } from '../contracts/plan.ts';
import { plannerConfigOf } from '../contracts/planner-config.ts';
import { scrubFreeText } from './minimise.ts';

/**
 * Prompt-injection screening of untrusted observation text.
 *
 * Observations carry text written by third parties (a customer's ticket, a log line, an alert). A
 * planner that hands it to an LLM can be steered by it. The screen looks for what such steering looks
 * like: instructions aimed at the model ("ignore previous instructions", "you are now ...", "set the
 * confidence to 1"), role-play set-ups, system-prompt leaks and chat-template tokens, hidden unicode
 * (zero-width, bidi overrides, tag characters), tool-call look-alikes (function-call JSON, `<tool_call>`,
 * code fences calling the model's actions) and encoded payloads (base64, hex, percent- or
 * entity-encoded text that decodes to any of the above), in English, German, French, Spanish,
 * Italian, Dutch, Portuguese, Polish, Turkish, Russian, Chinese and Japanese.
 *
 * It is a tripwire, not a proof: a hit sends the plan to a person with the reason, it never blocks.
 * Pure and deterministic: the gate re-screens the observation itself rather than trusting a planner.
 */

export type ScreenCategory =
  | 'instruction-override'
  | 'role-play'
  | 'system-prompt'
  | 'plan-manipulation'
  | 'delimiter-escape'
  | 'hidden-unicode'
  | 'tool-call'
  | 'encoded-payload';

export interface ScreenHit {
  category: ScreenCategory;
  /** Which pattern matched, e.g. `en.ignore-previous`, `unicode.zero-width`. */
  rule: string;
  /** Dotted path of the screened field (`fields.reason`), or `subject`. */
  path: string;
  /** What matched, with hidden characters made visible (`<U+200B>`); `[sensitive field]` for personal data. */
  excerpt: string;
}

export interface ScreenResult {
  flagged: boolean;
  hits: ScreenHit[];
  /** One line for the reviewer and the audit log; empty when nothing was found. */
  reason: string;
}

/** What the screen needs of a model: its action names (tool-call look-alikes), sensitive paths, settings. */
export interface ScreenModel {
  config: { actions: Record<string, unknown> } & object;
  sensitiveFields?: readonly string[];
}

// ------------------------------------------------------------------------------------------------
// Normalisation
// ------------------------------------------------------------------------------------------------

/** Latin look-alikes from Cyrillic, Greek and fullwidth blocks (NFKC handles fullwidth already). */
const CONFUSABLES: Record<string, string> = {
  а: 'a',
  в: 'b',
  е: 'e',
  ё: 'e',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 't',
  у: 'y',
  х: 'x',
  і: 'i',
  ї: 'i',
  ј: 'j',
  ѕ: 's',
  ԁ: 'd',
  ɡ: 'g',
  ӏ: 'l',
  α: 'a',
  β: 'b',
  ε: 'e',
  η: 'n',
  ι: 'i',
  κ: 'k',
  ν: 'v',
  ο: 'o',
  ρ: 'p',
  τ: 't',
  υ: 'u',
  χ: 'x',
  ω: 'w',
  ѵ: 'v',
};
const LEET: Record<string, string> = {
  '0': 'o',
  '1': 'i',
  '3': 'e',
  '4': 'a',
  '5': 's',
  '7': 't',
  '@': 'a',
  $: 's',
  '!': 'i',
  '|': 'l',
};

/** Invisible characters removed before matching (their presence is judged separately). */
const INVISIBLE =
  /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0]|[\u{E0000}-\u{E007F}]|[\u{E0100}-\u{E01EF}]/gu;

function foldConfusables(s: string): string {
  let out = '';
  for (const ch of s) out += CONFUSABLES[ch] ?? ch;
  return out;
}

/** Joins letters written one by one ("i g n o r e", "i.g.n.o.r.e") into words. */
function despace(s: string): string {
  return s.replace(/(?:^|(?<=\s))(?:[\p{L}\p{N}][ .\-_*·]){2,}[\p{L}\p{N}](?=\s|$|[.,;:!?])/gu, (m) =>
    m.replace(/[ .\-_*·]/g, ''),
  );
}

/** Undoes leetspeak in words that mix letters with digits or symbols ("1gn0r3" → "ignore"). */
function unleet(s: string): string {
  return s.replace(/[\p{L}0-9@$!|]+/gu, (w) =>
    /\p{L}/u.test(w) && /[0-9@$!|]/.test(w) ? w.replace(/[0134579@$!|]/g, (c) => LEET[c] ?? c) : w,
  );
}

/** Decodes inline escapes an attacker may use to hide words: `\u0069`, `&#105;`, `&#x69;`. */
function decodeEscapes(s: string): string {
  return s
    .replace(/\\u\{?([0-9a-fA-F]{2,6})\}?/g, (m, h: string) => safeChar(parseInt(h, 16)) ?? m)
    .replace(/\\x([0-9a-fA-F]{2})/g, (m, h: string) => safeChar(parseInt(h, 16)) ?? m)
    .replace(/&#x([0-9a-fA-F]{1,6});?/g, (m, h: string) => safeChar(parseInt(h, 16)) ?? m)
    .replace(/&#([0-9]{1,7});?/g, (m, d: string) => safeChar(parseInt(d, 10)) ?? m);
}
function safeChar(cp: number): string | undefined {
  return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : undefined;
}

/** The forms of a text the patterns run on: each defeats one kind of obfuscation. */
function normal(raw: string): string {
  // Spaces collapse; line breaks stay (role markers are judged at the start of a line).
  return raw
    .replace(INVISIBLE, '')
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n\s*/g, '\n')
    .trim();
}

function variants(raw: string): string[] {
  const base = normal(raw);
  const out = new Set<string>([base]);
  const folded = foldConfusables(base);
  out.add(folded);
  const despaced = despace(folded).replace(/ {2,}/g, ' ');
  out.add(despaced);
  out.add(unleet(folded));
  out.add(unleet(despaced));
  const decoded = decodeEscapes(raw);
  if (decoded !== raw) out.add(foldConfusables(normal(decoded)));
  return [...out];
}

// ------------------------------------------------------------------------------------------------
// Patterns
// ------------------------------------------------------------------------------------------------

interface Pattern {
  rule: string;
  category: ScreenCategory;
  re: RegExp;
  /** Rejects a match (e.g. "ignore MY previous instructions about the address" is the customer's own). */
  unless?: (match: string) => boolean;
}

/** Possessives that make "ignore my previous instructions" a customer talking about their own request. */
const OWN = /\b(my|our|mine|meine[nrms]?|unsere[nrms]?|mes|nos|mis|nuestras|mie|nostre|mijn|onze|minhas|moje)\b/;

const EN_OBJ =
  '(?:instructions?|rules|prompts?|directives?|directions|guidelines|guidance|constraints|polic(?:y|ies)|programming|commands|orders|context|training|restrictions|safeguards|guardrails)';
const EN_MOD =
  '(?:all|any|every|of|the|your|these|those|above|previous|prior|earlier|preceding|foregoing|original|initial|system|safety|existing|current|other|old|given|and)';
const EN_STRONG =
  /\b(all|any|every|your|above|previous|prior|earlier|preceding|foregoing|original|initial|system|safety|existing|old|given)\b/;

const PATTERNS: Pattern[] = [
  // --- instruction override, English -----------------------------------------------------------
  {
    rule: 'en.ignore-instructions',
    category: 'instruction-override',
    re: new RegExp(
      `\\b(?:ignore|disregard|forget|override|bypass|skip|discard|neglect|drop|abandon|set aside|throw out)\\s+(?:${EN_MOD}\\s+){1,5}${EN_OBJ}\\b`,
    ),
    unless: (m) => !EN_STRONG.test(m.replace(/^\S+/, '')) || OWN.test(m),
  },
  {
    rule: 'en.ignore-everything',
    category: 'instruction-override',
    re: /\b(?:ignore|disregard|forget)\s+(?:everything|anything|all(?: of)?(?: that| this| the text)?|what(?:ever)?(?: you were| you've been| was)?(?: told| said)?)\s+(?:above|before|previously|earlier|prior|so far|up to (?:now|here)|you (?:were|have been|'ve been) told)/,
  },
  {
    rule: 'en.instructions-void',
    category: 'instruction-override',
    re: /\b(?:previous|prior|earlier|above|original|old|your|all|the|these|those|existing|current)\s+(?:instructions|rules|guidance|guidelines|directives|prompts?|polic(?:y|ies))\s+(?:you (?:were given|received|got|have)\s+)?(?:are|were|is|have been|has been)\s+(?:now\s+)?(?:void|null|cancel+ed|obsolete|outdated|invalid|revoked|superseded|overridden|replaced|suspended|lifted|no longer (?:valid|apply|applicable|in effect|in force|relevant))/,
  },
  {
    rule: 'en.set-aside-told',
    category: 'instruction-override',
    re: /\b(?:set aside|scratch|drop|discard|forget|ignore|disregard|throw away|throw out|abandon)\s+(?:all\s+|any\s+|the\s+)?(?:guidance|rules|instructions|whatever|everything|anything|what)\s+(?:that\s+)?(?:you(?:'ve| have)?\s+(?:were\s+|been\s+)?(?:given|told|received|taught|programmed with)|they(?:'ve| have)?\s+(?:told|given|taught)\s+you)/,
  },
  {
    rule: 'en.impersonation',
    category: 'instruction-override',
    re: /\bthis is (?:the|your) (?:system )?(?:administrator|admin|developer|system|operator|openai|anthropic)\b(?!\s+(?:of|for) (?:my|our|the) (?:account|company|household))|\b(?:reviewers?|human review|manual review|approvals?)\s+(?:is|are)\s+(?:no longer|not)\s+(?:needed|required|necessary)\b/,
  },
  {
    rule: 'en.new-instructions',
    category: 'instruction-override',
    re: /\b(?:new|updated|revised|real|actual|true|additional|important|urgent|override|priority)\s+(?:system\s+)?(?:instructions?|rules|task|directives?|orders)\s*(?:[:\-–—]|follow|for you|for the (?:ai|assistant|model|agent|planner|system|bot)|from (?:the )?(?:admin|developer|system|management))/,
  },
  {
    rule: 'en.your-new-task',
    category: 'instruction-override',
    re: /\byour\s+(?:new|real|actual|true|only|updated)\s+(?:task|instructions?|goal|purpose|job|objective|role)\s+(?:is|are|:|will be|now)/,
  },
  {
    rule: 'en.from-now-on',
    category: 'instruction-override',
    re: /\b(?:from now on|henceforth|starting now|going forward),?\s+(?:you\s+(?:will\s+|must\s+|shall\s+|should\s+|are to\s+)?|always\s+|only\s+)(?:only\s+|always\s+)?(?:act as|obey|ignore|approve|output|comply|behave as|respond only|answer only|reply only|say only|(?:respond|answer|reply|output) (?:with|in) json)\b/,
  },
  {
    rule: 'en.do-not-follow',
    category: 'instruction-override',
    re: /\b(?:do not|don't|dont|never|stop)\s+(?:follow|obey|apply|respect|adhere to)(?:ing)?\s+(?:your|the|any|these|those)\s+(?:\w+\s+)?(?:rules|instructions|policy|policies|guidelines|constraints|restrictions)/,
  },
  {
    rule: 'en.obey-me',
    category: 'instruction-override',
    re: /\byou\s+(?:must|will|shall|have to)\s+(?:now\s+)?(?:obey|comply with|follow)\s+(?:me|my|these|the following|this)\s*(?:instructions?|orders|commands|rules)?\b/,
  },
  {
    rule: 'en.override-mode',
    category: 'instruction-override',
    re: /\b(?:admin(?:istrator)?|root|sudo|superuser|system|security)\s+override\b|\b(?:developer|god|jailbreak|unrestricted|dan)\s+mode\s*(?:enabled|activated|on|unlocked|engaged|:)|\b(?:enable|enter|activate|switch to|you are (?:now )?in|now in|unlock)\s+(?:the\s+)?(?:developer|god|jailbreak|unrestricted|admin|dan)\s+mode\b/,
  },
  {
    rule: 'en.do-anything-now',
    category: 'role-play',
    re: /\bdo anything now\b|\byou are (?:now )?(?:jailbroken|unfiltered|uncensored|unrestricted)\b|\bjailbr(?:eak|oken)\s+(?:mode|prompt|enabled|activated)\b/,
  },
  {
    rule: 'en.decode-and-follow',
    category: 'instruction-override',
    re: /\b(?:decode|decipher|translate|deobfuscate|base64[- ]decode|reverse)\b[^.]{0,60}?\b(?:and|then)\s+(?:follow|execute|obey|do|run|apply|carry out|act on)\b/,
  },

  // --- role play -----------------------------------------------------------------------------
  {
    rule: 'en.you-are-now',
    category: 'role-play',
    re: /\byou(?: are|'re| r)\s+(?:now|no longer|henceforth|from now on)\s+(?:an?\s+|my\s+|in\s+|free\b|unrestricted|jailbroken|dan\b|acting|operating|playing|going to (?:act|be|play|pretend)|bound|restricted|limited|required|allowed|permitted|able to|an? (?:ai|assistant|bot|model|agent)|\w*bot\b|\w*gpt\b)/,
  },
  {
    rule: 'en.no-restrictions',
    category: 'role-play',
    re: /\b(?:ai|assistant|bot|model|chatbot|agent|you)\b[^.]{0,30}?\b(?:with no|without(?: any)?|free of|freed from|unbound by)\s+(?:restrictions|limitations|filters|rules|guardrails|content polic(?:y|ies)|safety (?:rules|guidelines)|ethical guidelines)\b/,
  },
  {
    rule: 'en.act-as',
    category: 'role-play',
    re: /\b(?:act|behave|respond|function|operate)\s+(?:as|like)\s+(?:if you (?:are|were)\s+)?(?:an?|the|my)\s+(?:(?:different|new|unrestricted|unfiltered|evil|helpful|rogue|jailbroken)\s+)?(?:ai|assistant|bot|chatbot|model|llm|system|admin|administrator|developer|root|superuser|dan|refund (?:bot|agent|approver)|approver|planner)\b/,
  },
  {
    rule: 'en.pretend',
    category: 'role-play',
    re: /\bpretend\s+(?:that\s+)?(?:you(?: are|'re)|to be\s+(?:an?|the)\s+(?:ai|assistant|bot|model|system|admin|administrator|developer|manager|supervisor|different))/,
  },
  {
    rule: 'en.roleplay',
    category: 'role-play',
    re: /\brole[\s-]?play(?:ing)?\b|\blet'?s play a game\b|\bin this (?:hypothetical|fictional|imaginary) (?:story|scenario|world),? you\b/,
  },
  {
    rule: 'en.imagine-you-are',
    category: 'role-play',
    re: /\b(?:imagine|suppose|assume)\s+(?:that\s+)?you(?: are|'re)\s+(?:an?|the)\s+(?:\w+\s+)?(?:ai|assistant|bot|model|system|admin|administrator|developer|llm|chatbot)\b/,
  },
  {
    rule: 'en.as-an-ai',
    category: 'role-play',
    re: /\bas an ai(?: language)? model\b|\byou are (?:chatgpt|gpt-?\d|an? (?:large )?language model|an ai assistant)\b/,
  },
  {
    rule: 'en.simulate',
    category: 'role-play',
    re: /\bsimulate\s+(?:being\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|jailbroken|different|evil)\s+(?:ai|assistant|model|bot)\b/,
  },

  // --- system prompt and chat templates ----------------------------------------------------------
  {
    rule: 'en.system-prompt',
    category: 'system-prompt',
    re: /\bsystem\s*-?\s*prompts?\b|\b(?:hidden|secret)\s+(?:prompt|instructions)\b|\b(?:pre-?prompt|meta[- ]prompt)\b/,
  },
  {
    rule: 'en.reveal-instructions',
    category: 'system-prompt',
    re: /\b(?:reveal|print|show|repeat|output|leak|display|tell me|give me|share|dump|recite|write out|list|spell out|what (?:are|were|is))\b(?:\s+\w+){0,3}?\s+(?:your|the)\s+(?:(?:full|exact|complete|entire)\s+)?(?:(?:system|hidden|initial|secret|internal|confidential|developer)\s+)+(?:prompt|instructions?|configuration|rules|guidelines)/,
  },
  {
    rule: 'en.repeat-above',
    category: 'system-prompt',
    re: /\b(?:repeat|print|output|copy)\s+(?:everything|all(?: the)?(?: text| words)?|the (?:text|words))\s+(?:above|before|that precedes?)\b|\beverything above this line\b|\bverbatim\b.{0,40}\b(?:instructions|prompt)\b/,
  },
  {
    rule: 'role-marker',
    category: 'system-prompt',
    re: /(?:^|[\n.!?\]"'“‘«:]\s*)(?:system|assistant|developer|admin)\s*:\s*(?:you\b|ignore|new\b|override|from now|approve|the assistant|all\b|disregard|forget|do not|don't|always|never|set\b|mark\b)/,
  },
  {
    rule: 'chat-template-token',
    category: 'system-prompt',
    re: /<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|end_of_text|start_header_id|end_header_id|eot_id|eom_id)\|>|\[\/?inst\]|<<\/?sys>>|<\/?s>|<start_of_turn>|<end_of_turn>|^#{2,}\s*(?:system|instruction|instructions|assistant|response)\s*:?|\n#{2,}\s*(?:system|instruction|instructions|assistant|response)\s*:?/,
  },

  // --- delimiter escapes ---------------------------------------------------------------------------
  {
    rule: 'delimiter-escape',
    category: 'delimiter-escape',
    re: /<\/?\s*(?:system|instructions?|observation[\w-]*|untrusted[\w-]*|data|context|user_input|admin|developer|prompt)\s*>|\b(?:end|close) of (?:the )?(?:observation|data|untrusted data|user input|input|context|document|customer (?:message|text))\b|\bbegin (?:new )?(?:system|admin|developer|trusted) (?:message|instructions?|prompt|section)\b|(?:^|\n)[-=#*]{3,}\s*(?:end|system|instructions?)\b/,
  },

  // --- manipulation of the plan and the gate --------------------------------------------------------
  {
    rule: 'plan.set-confidence-risk',
    category: 'plan-manipulation',
    re: /\b(?:set|make|put|change|raise|lower|give|mark|report|return|assign|output|use|rate)\b(?:\s+\w+){0,3}?\s+(?:confidence|certainty|risk(?:\s+score)?|risk level)\s*(?:to|=|:|at|of|as)\s*(?:1(?:\.0+)?\b|100\s*%?|0(?:\.0+)?\b|zero|maximum|max|minimum|min|high|low|none|very low|full)/,
  },
  {
    rule: 'plan.confidence-should-be',
    category: 'plan-manipulation',
    re: /\b(?:your\s+|the\s+)?(?:confidence|certainty|risk(?:\s+score)?)\b[^.]{0,40}?\b(?:should|must|needs to|has to|ought to|is to|will)\s+be\s+(?:set\s+(?:to|at)\s+)?(?:1(?:\.0+)?\b|100\s*%|0(?:\.0+)?\b|zero|maximum|max|minimal|minimum|very (?:high|low)|high|low|none)|\b(?:list|report|include|add|mention)\s+no\s+risk(?:\s+factors)?\b/,
  },
  {
    rule: 'plan.confidence-literal',
    category: 'plan-manipulation',
    re: /["']?\b(?:confidence|risk_?score|riskscore|risk)["']?\s*[:=]\s*["']?(?:1(?:\.0+)?|0(?:\.0+)?)["']?\s*(?:[,}\n]|$)/,
  },
  {
    rule: 'plan.skip-review',
    category: 'plan-manipulation',
    re: /\b(?:approve|process|issue|execute|pay|grant|authori[sz]e|refund|run|send|complete|finali[sz]e|push)\w*\b[^.]{0,60}?\bwithout\s+(?:any\s+)?(?:human\s+|manual\s+|further\s+|additional\s+)?(?:review|approval|reviewer|checks?|verification|escalation|oversight)\b|\b(?:skip|bypass|avoid|circumvent|no need for|don't need|do not need)\s+(?:the\s+|a\s+|any\s+)?(?:human\s+|manual\s+)?(?:review|approval|reviewer|escalation|verification|oversight|human in the loop|policy|gate)\b|\bauto[- ]?approve\b/,
  },
  {
    rule: 'plan.do-not-flag',
    category: 'plan-manipulation',
    re: /\b(?:do not|don't|dont|never)\s+(?:flag|escalate|route|send|forward|pass)\s+(?:this|it|the\s+\w+)?\s*(?:to|for)\s+(?:a\s+|any\s+|the\s+)?(?:human|review|reviewer|manual review|person|operator)s?\b|\b(?:do not|don't|dont|never)\s+(?:involve|notify|tell|alert)\s+(?:a |any |the )?(?:human|person|reviewer|operator)s?\b|\b(?:do not|don't|dont)\s+flag\s+(?:this|it)\b/,
  },
  {
    rule: 'plan.mark-as',
    category: 'plan-manipulation',
    re: /\b(?:mark|classify|treat|flag|label|tag|consider|rate|score)\s+(?:this|it|the|my|our)(?:\s+(?:case|request|ticket|refund|plan|incident|order|claim|customer))?\s+as\s+(?:an?\s+)?(?:approved|safe|low[- ]risk|verified|legitimate|trusted|reviewed|pre-?approved|benign|harmless)\b/,
  },
  {
    rule: 'plan.call-tool',
    category: 'tool-call',
    re: /\b(?:call|invoke|use|run|trigger|execute)\s+(?:the\s+)?(?:[\w.-]+\s+)?(?:tool|function|action)\s*(?:[:(`"']|call|with|named)|\b(?:call|invoke|execute)\s+(?:the\s+)?functions?\.\w+/,
  },

  // --- other languages -------------------------------------------------------------------------------
  {
    rule: 'de.ignore',
    category: 'instruction-override',
    re: /\b(?:ignorier(?:e|en|t)?|vergiss|vergessen|missachte|missachten|übergehe)\b(?:\s+\S+){0,4}?\s+(?:anweisungen|instruktionen|regeln|vorgaben|befehle|anordnungen|richtlinien)\b/,
    unless: (m) => OWN.test(m),
  },
  {
    rule: 'de.du-bist-jetzt',
    category: 'role-play',
    re: /\b(?:du bist|sie sind|ihr seid)\s+(?:jetzt|nun|ab sofort|ab jetzt|von nun an)\s+(?:ein|eine|mein|im|kein|keine|nicht mehr|frei|dan|der neue|die neue)\b/,
  },
  {
    rule: 'de.system',
    category: 'system-prompt',
    re: /\bsystem-?\s?(?:anweisungen?|vorgaben|nachricht an die ki)\b|\b(?:zeige|gib|nenne|verrate)\b(?:\s+\S+){0,3}\s+(?:deine|ihre)\s+(?:system\S*|ursprünglichen|geheimen|internen)\s+(?:anweisungen|prompt|regeln)/,
  },
  {
    rule: 'de.new-instructions',
    category: 'instruction-override',
    re: /\bneue\s+(?:anweisungen?|regeln|aufgabe)\s*:|\bab (?:sofort|jetzt)\s+(?:antwortest|befolgst|genehmigst|ignorierst)\b/,
  },
  {
    rule: 'de.skip-review',
    category: 'plan-manipulation',
    re: /\bohne\s+(?:jede\s+|weitere\s+|menschliche\s+|manuelle\s+)*(?:prüfung|überprüfung|freigabe|kontrolle|genehmigung)\b|\b(?:setze|setz|stelle)\b(?:\s+\S+){0,3}\s+(?:konfidenz|zuversicht|risiko)\s+auf\b/,
  },
  {
    rule: 'fr.ignore',
    category: 'instruction-override',
    re: /\b(?:ignore[rz]?|oublie[rz]?|ne tenez pas compte|ne tiens pas compte|fais abstraction|faites abstraction)\s+(?:de\s+)?(?:toutes\s+)?(?:les|tes|vos|des|ces)\s+(?:\S+\s+){0,2}?(?:instructions?|consignes|règles|directives|ordres)\b/,
    unless: (m) => OWN.test(m),
  },
  {
    rule: 'fr.tu-es-maintenant',
    category: 'role-play',
    re: /\b(?:tu es|vous êtes|tu seras|vous serez)\s+(?:maintenant|désormais|dorénavant|à présent)\s+(?:un|une|mon|en mode|libre|dan)\b|\bà partir de maintenant,?\s+(?:tu|vous)\s+(?:es|êtes|vas|allez|dois|devez)\b|\bjoue le rôle d/,
  },
  {
    rule: 'fr.system',
    category: 'system-prompt',
    re: /\b(?:prompt|invite|instructions?|consignes?) (?:du )?système\b|\b(?:révèle|affiche|montre|répète)[sz]?\b(?:\s+\S+){0,3}\s+(?:tes|vos)\s+(?:instructions|consignes)\b/,
  },
  {
    rule: 'fr.skip-review',
    category: 'plan-manipulation',
    re: /\b(?:rembours|approuv|valid|accept|pai|pay|vers|trait|reembols|aprueb|aprob|pag|proces|rimbors|approv|elabor|aprov|concede|conced|erstatt|genehmig|zahl|überweis|terugbetal|keur|betaal)\w*\b[^.]{0,60}?sans\s+(?:aucune\s+|autre\s+)?(?:vérification|validation|revue|approbation|contrôle)(?:\s+(?:humaine|manuelle))?|\b(?:mets|mettez|fixe[zr]?)\b(?:\s+\S+){0,3}\s+(?:confiance|risque)\s+à\b|\bapprouve[rz]? automatiquement\b/,
  },
  {
    rule: 'es.ignore',
    category: 'instruction-override',
    re: /\b(?:ignora|ignore|ignorar|ignoren|olvida|olvide|olvidar|omite|omita)\b(?:\s+\S+){0,4}?\s+(?:instrucciones|reglas|indicaciones|directrices|órdenes)\b/,
    unless: (m) => OWN.test(m),
  },
  {
    rule: 'es.ahora-eres',
    category: 'role-play',
    re: /\b(?:ahora eres|eres ahora|a partir de ahora (?:eres|serás|actúa)|desde ahora eres|actúa como (?:un|una) (?:ia|asistente|bot|administrador))\b/,
  },
  {
    rule: 'es.system',
    category: 'system-prompt',
    re: /\b(?:prompt|instrucciones) del sistema\b|\b(?:revela|muestra|repite)\b(?:\s+\S+){0,3}\s+tus\s+instrucciones\b/,
  },
  {
    rule: 'es.skip-review',
    category: 'plan-manipulation',
    re: /\b(?:rembours|approuv|valid|accept|pai|pay|vers|trait|reembols|aprueb|aprob|pag|proces|rimbors|approv|elabor|aprov|concede|conced|erstatt|genehmig|zahl|überweis|terugbetal|keur|betaal)\w*\b[^.]{0,60}?sin\s+(?:ninguna\s+|más\s+)?(?:revisión|verificación|aprobación|control)(?:\s+(?:humana|manual))?|\baprueba automáticamente\b|\b(?:pon|establece|fija)\b(?:\s+\S+){0,3}\s+(?:confianza|riesgo)\s+(?:en|a)\b/,
  },
  {
    rule: 'it.ignore',
    category: 'instruction-override',
    re: /\b(?:ignora|ignorate|ignori|dimentica|dimenticate|trascura)\b(?:\s+\S+){0,4}?\s+(?:istruzioni|regole|direttive|indicazioni)\b/,
    unless: (m) => OWN.test(m),
  },
  {
    rule: 'it.ora-sei',
    category: 'role-play',
    re: /\b(?:ora sei|adesso sei|da ora in poi (?:sei|tu sei|agisci)|d'ora in poi (?:sei|agisci)|fingi di essere)\b/,
  },
  { rule: 'it.system', category: 'system-prompt', re: /\b(?:prompt|istruzioni) di sistema\b/ },
  {
    rule: 'it.skip-review',
    category: 'plan-manipulation',
    re: /\b(?:rembours|approuv|valid|accept|pai|pay|vers|trait|reembols|aprueb|aprob|pag|proces|rimbors|approv|elabor|aprov|concede|conced|erstatt|genehmig|zahl|überweis|terugbetal|keur|betaal)\w*\b[^.]{0,60}?senza\s+(?:alcuna\s+)?(?:revisione|verifica|approvazione|controllo)(?:\s+(?:umana|manuale))?|\bapprova automaticamente\b/,
  },
  {
    rule: 'nl.ignore',
    category: 'instruction-override',
    re: /\b(?:negeer|negeren|vergeet)\b(?:\s+\S+){0,4}?\s+(?:instructies|regels|opdrachten|richtlijnen|aanwijzingen)\b/,
    unless: (m) => OWN.test(m),
  },
  {
    rule: 'nl.je-bent-nu',
    category: 'role-play',
    re: /\b(?:je bent nu|u bent nu|vanaf nu ben je|vanaf nu bent u|doe alsof je)\b/,
  },
  { rule: 'nl.system', category: 'system-prompt', re: /\bsysteem-?\s?(?:prompt|instructies)\b/ },
  {
    rule: 'nl.skip-review',
    category: 'plan-manipulation',
    re: /\bzonder\s+(?:enige\s+)?(?:controle|beoordeling|goedkeuring|review)\b|\bkeur automatisch goed\b/,
  },
  {
    rule: 'pt.ignore',
    category: 'instruction-override',
    re: /\b(?:ignore|ignora|ignorar|esqueça|esqueca|esqueça-se|desconsidere|desconsidera)\b(?:\s+\S+){0,4}?\s+(?:instruções|instrucoes|regras|diretrizes|orientações)\b/,
    unless: (m) => OWN.test(m),
  },
  {
    rule: 'pt.agora-voce-e',
    category: 'role-play',
    re: /\b(?:agora|a partir de agora)\s+(?:você|voce|tu)\s+(?:é|és|será)(?=\s)|\b(?:você|voce)\s+agora\s+é(?=\s)/,
  },
  {
    rule: 'pt.skip-review',
    category: 'plan-manipulation',
    re: /\b(?:rembours|approuv|valid|accept|pai|pay|vers|trait|reembols|aprueb|aprob|pag|proces|rimbors|approv|elabor|aprov|concede|conced|erstatt|genehmig|zahl|überweis|terugbetal|keur|betaal)\w*\b[^.]{0,60}?sem\s+(?:nenhuma\s+|qualquer\s+)?(?:revisão|revisao|verificação|verificacao|aprovação|aprovacao)(?:\s+(?:humana|manual))?|\baprove automaticamente\b/,
  },
  {
    rule: 'pl.ignore',
    category: 'instruction-override',
    re: /\b(?:zignoruj|ignoruj|zapomnij|pomiń)\b(?:\s+\S+){0,4}?\s+(?:instrukcje|instrukcji|polecenia|poleceń|zasady|reguły)\b/,
    unless: (m) => OWN.test(m),
  },
  { rule: 'pl.jestes-teraz', category: 'role-play', re: /\b(?:jesteś teraz|od teraz jesteś|teraz jesteś)\b/ },
  {
    rule: 'pl.skip-review',
    category: 'plan-manipulation',
    re: /\bbez\s+(?:żadnej\s+)?(?:weryfikacji|kontroli|akceptacji|sprawdzania)\b/,
  },
  {
    rule: 'tr.ignore',
    category: 'instruction-override',
    re: /(?:önceki|tüm|bütün|yukarıdaki)\s+(?:\S+\s+)?(?:talimatları|kuralları|yönergeleri)\s+(?:yok say|görmezden gel|unut|dikkate alma)/,
  },
  {
    rule: 'ru.ignore',
    category: 'instruction-override',
    re: /(?:игнорируй|игнорируйте|проигнорируй|проигнорируйте|забудь|забудьте|не обращай внимания на)\s+(?:\S+\s+){0,3}?(?:инструкции|инструкций|указания|правила|команды)/,
  },
  { rule: 'ru.ty-teper', category: 'role-play', re: /(?:^|\s)(?:ты теперь|теперь ты|вы теперь|теперь вы)\s/ },
  {
    rule: 'ru.system',
    category: 'system-prompt',
    re: /системн\S*\s+(?:промпт|подсказк|инструкци)|без\s+(?:какой-либо\s+)?(?:проверки|одобрения|согласования)/,
  },
  {
    rule: 'zh.ignore',
    category: 'instruction-override',
    re: /(?:忽略|无视|忽视|忘记|忘掉|不要理会|不要遵守)(?:之前|以上|上面|先前|前面|此前|你的)?(?:的)?(?:所有|全部|一切)?(?:的)?(?:指令|指示|说明|规则|提示|要求)/,
  },
  {
    rule: 'zh.you-are-now',
    category: 'role-play',
    re: /你(?:现在|从现在起|从现在开始)(?:是|扮演|作为)|扮演(?:一个|一名)/,
  },
  {
    rule: 'zh.system',
    category: 'system-prompt',
    re: /系统提示|系統提示|无需(?:人工)?审核|不需要(?:人工)?审核|自动批准|跳过审核/,
  },
  {
    rule: 'ja.ignore',
    category: 'instruction-override',
    re: /(?:以前|前|上記|これまで|今まで)の(?:すべての|全ての)?(?:指示|命令|ルール|指令)を?(?:すべて|全て)?(?:無視|忘れ)|(?:指示|命令)を無視/,
  },
  {
    rule: 'ja.you-are-now',
    category: 'role-play',
    re: /あなたは(?:今から|これから|今日から)|システムプロンプト|審査なしで|自動(?:的に)?承認/,
  },
];

/** The strongest phrases with every space and punctuation mark removed. */
const COMPACT =
  /(?:ignore|disregard|forget|override)(?:all|any|every)?(?:of)?(?:the|your)?(?:previous|prior|above|earlier|preceding|system|existing)(?:instructions?|rules|prompts?|directives|guidelines)|(?:ignore|disregard|forget)(?:all|your)(?:instructions?|rules|prompts?|guidelines)|doanythingnow/u;

/** Shapes of a function call written as JSON or markup. */
const TOOL_SHAPES: Pattern[] = [
  {
    rule: 'tool.markup',
    category: 'tool-call',
    re: /<\/?\s*(?:tool_calls?|function_calls?|tool_use|tool_result|invoke|function|parameter|arguments|antml:[a-z_]+)\b[^>]{0,80}>/,
  },
  {
    rule: 'tool.json-keys',
    category: 'tool-call',
    re: /["'](?:tool_calls?|function_call|tool_use|tool_choice)["']\s*:/,
  },
  {
    rule: 'tool.json-name-arguments',
    category: 'tool-call',
    re: /["']name["']\s*:\s*["'][\w.-]+["']\s*,\s*["'](?:arguments|parameters|args|input)["']\s*:/,
  },
  { rule: 'tool.json-type-function', category: 'tool-call', re: /["']type["']\s*:\s*["']function["']/ },
  {
    rule: 'tool.json-action',
    category: 'tool-call',
    re: /["'](?:action|tool|function|fn|command|recipient)["']\s*:\s*["'][a-z]+[A-Z_.][\w.]*["']/,
  },
  { rule: 'tool.functions-namespace', category: 'tool-call', re: /\bfunctions\.[A-Za-z_]\w*\s*\(/ },
];

// ------------------------------------------------------------------------------------------------
// Hidden unicode
// ------------------------------------------------------------------------------------------------

const ZERO_WIDTH = /[\u200B\u200C\u200D\u2060\u180E\uFEFF\u2061-\u2064\u034F\u115F\u1160\u3164\uFFA0]/u;
const BIDI = /[\u202A-\u202E\u2066-\u2069]/u;
const TAGS = /[\u{E0000}-\u{E007F}]/u;
const VS_SUPPLEMENT = /[\u{E0100}-\u{E01EF}]/u;
const PICTO = /\p{Extended_Pictographic}|\p{Emoji_Component}/u;
const ASCII_CONTEXT = /[\x21-\x7E]/;

function visible(s: string): string {
  return s.replace(
    /[\u0000-\u0008\u000B-\u001F\u007F\u00AD\u034F\u061C\u115F\u1160\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0]|[\u{E0000}-\u{E007F}]|[\u{E0100}-\u{E01EF}]/gu,
    (c) => `<U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}>`,
  );
}

function excerptAround(text: string, index: number, length: number): string {
  const from = Math.max(0, index - 20);
  const to = Math.min(text.length, index + Math.max(length, 1) + 20);
  let s = visible(text.slice(from, to)).replace(/\s+/g, ' ');
  if (s.length > 120) s = `${s.slice(0, 117)}...`;
  return `${from > 0 ? '…' : ''}${s}${to < text.length ? '…' : ''}`;
}

interface RawHit {
  category: ScreenCategory;
  rule: string;
  excerpt: string;
}

function hiddenUnicode(text: string): { hits: RawHit[]; smuggled: string } {
  const hits: RawHit[] = [];
  const chars = [...text];
  let zw = 0;
  let zwFirst = -1;
  let smuggled = '';
  let tagRun = 0;
  let offset = 0;
  const offsets: number[] = [];
  for (const c of chars) {
    offsets.push(offset);
    offset += c.length;
  }
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (ZERO_WIDTH.test(c)) {
      const prev = chars[i - 1] ?? '';
      const next = chars[i + 1] ?? '';
      // A joiner between emoji (family, professions) or a ZWNJ inside Persian / Indic script is writing,
      // not hiding; one between ASCII letters or next to another invisible character is hiding.
      const betweenEmoji =
        (c === '\u200D' || c === '\u200C') &&
        (PICTO.test(prev) || PICTO.test(next)) &&
        !ASCII_CONTEXT.test(prev + next);
      const script =
        (c === '\u200C' || c === '\u200D') &&
        /\p{L}/u.test(prev) &&
        /\p{L}/u.test(next) &&
        !/[A-Za-z]/.test(prev + next);
      const bom = c === '\uFEFF' && i === 0;
      if (!betweenEmoji && !script && !bom) {
        zw++;
        if (zwFirst < 0) zwFirst = i;
      }
    } else if (BIDI.test(c)) {
      hits.push({
        category: 'hidden-unicode',
        rule: 'unicode.bidi-control',
        excerpt: excerptAround(text, offsets[i]!, 1),
      });
    } else if (TAGS.test(c)) {
      // Subdivision flags (🏴 + lower-case tag letters + cancel tag) are the one legitimate use.
      const cp = c.codePointAt(0)!;
      let j = i;
      while (j > 0 && TAGS.test(chars[j - 1]!)) j--;
      const flag = chars[j - 1] === '\u{1F3F4}';
      if (!flag) {
        tagRun++;
        if (cp >= 0xe0020 && cp <= 0xe007e) smuggled += String.fromCharCode(cp - 0xe0000);
      }
    } else if (VS_SUPPLEMENT.test(c)) {
      tagRun++;
      smuggled += String.fromCharCode((c.codePointAt(0)! - 0xe0100 + 16) & 0xff);
    }
  }
  if (zw > 0)
    hits.push({
      category: 'hidden-unicode',
      rule: 'unicode.zero-width',
      excerpt: `${zw} invisible character${zw > 1 ? 's' : ''}: ${excerptAround(text, offsets[zwFirst]!, 1)}`,
    });
  if (tagRun > 0)
    hits.push({
      category: 'hidden-unicode',
      rule: 'unicode.tag-characters',
      excerpt: `${tagRun} invisible tag characters${smuggled.trim() ? ` spelling "${smuggled.slice(0, 60)}"` : ''}`,
    });
  // Runs of ordinary variation selectors (beyond emoji presentation) can also carry bytes.
  const vsRun = /[\uFE00-\uFE0F]{3,}/u.exec(text);
  if (vsRun)
    hits.push({
      category: 'hidden-unicode',
      rule: 'unicode.variation-selectors',
      excerpt: excerptAround(text, vsRun.index, vsRun[0].length),
    });
  return { hits, smuggled };
}

// ------------------------------------------------------------------------------------------------
// Encoded payloads
// ------------------------------------------------------------------------------------------------

function printableRatio(s: string): number {
  if (!s) return 0;
  let ok = 0;
  for (const c of s) if (/[\p{L}\p{N}\p{P}\p{Zs}\n\t]/u.test(c)) ok++;
  return ok / [...s].length;
}

function decodedTexts(text: string): { kind: string; decoded: string; at: number; length: number }[] {
  const out: { kind: string; decoded: string; at: number; length: number }[] = [];
  const consider = (kind: string, decoded: string, at: number, length: number) => {
    if (decoded.length >= 8 && printableRatio(decoded) > 0.9 && /\p{L}{3}/u.test(decoded))
      out.push({ kind, decoded, at, length });
  };
  for (const m of text.matchAll(/[A-Za-z0-9+/_-]{16,}={0,2}/g)) {
    const s = m[0];
    // Ids and IBANs are base64-alphabet too, but decode to bytes, not text: the printable test drops them.
    const std = s.replace(/-/g, '+').replace(/_/g, '/');
    try {
      consider('base64', Buffer.from(std, 'base64').toString('utf8'), m.index, s.length);
    } catch {
      /* not base64 */
    }
  }
  for (const m of text.matchAll(/\b(?:[0-9a-fA-F]{2}[\s:]?){10,}/g)) {
    const hex = m[0].replace(/[\s:]/g, '');
    if (hex.length % 2 === 0) consider('hex', Buffer.from(hex, 'hex').toString('utf8'), m.index, m[0].length);
  }
  for (const m of text.matchAll(/\S*%[0-9a-fA-F]{2}\S*/g)) {
    if ((m[0].match(/%[0-9a-fA-F]{2}/g) ?? []).length < 3) continue;
    try {
      consider('percent-encoding', decodeURIComponent(m[0].replace(/\+/g, ' ')), m.index, m[0].length);
    } catch {
      /* malformed */
    }
  }
  const entities = /(?:&#x?[0-9a-fA-F]+;?){6,}/.exec(text);
  if (entities) consider('html-entities', decodeEscapes(entities[0]), entities.index, entities[0].length);
  const escapes = /(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}){6,}/.exec(text);
  if (escapes) consider('escapes', decodeEscapes(escapes[0]), escapes.index, escapes[0].length);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Screening
// ------------------------------------------------------------------------------------------------

function camelToSnake(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** Screens one text. `actionNames` are the model's actions: their tool names in text are look-alikes. */
export function screenText(text: string, opts: { actionNames?: readonly string[]; depth?: number } = {}): RawHit[] {
  const depth = opts.depth ?? 0;
  const hits: RawHit[] = [];
  const seen = new Set<string>();
  const add = (h: RawHit) => {
    if (seen.has(h.rule)) return;
    seen.add(h.rule);
    hits.push(h);
  };
  if (!text || typeof text !== 'string') return hits;

  const hidden = hiddenUnicode(text);
  for (const h of hidden.hits) add(h);

  const forms = variants(text);
  for (const form of forms) {
    for (const p of PATTERNS) {
      if (seen.has(p.rule)) continue;
      p.re.lastIndex = 0;
      const m = p.re.exec(form);
      if (m && !p.unless?.(m[0]))
        add({ category: p.category, rule: p.rule, excerpt: excerptAround(form, m.index, m[0].length) });
    }
  }
  // Words split by punctuation or spaces ("IGNORE. ALL. PREVIOUS.", "i g n o r e") meet here.
  if (!seen.has('en.ignore-instructions')) {
    const compact = unleet(foldConfusables(normal(text))).replace(/[^\p{L}]/gu, '');
    const m = COMPACT.exec(compact);
    if (m) add({ category: 'instruction-override', rule: 'compact.ignore-instructions', excerpt: m[0] });
  }
  // Tool-call shapes are judged on the text as written (case and quotes matter), minus invisibles.
  const plain = text.replace(INVISIBLE, '').normalize('NFKC');
  for (const p of TOOL_SHAPES) {
    const m = p.re.exec(plain);
    if (m) add({ category: p.category, rule: p.rule, excerpt: excerptAround(plain, m.index, m[0].length) });
  }
  // A model's action named as an identifier ("issueRefund", "issue_refund") is how a tool call is
  // written, not how people write ("issue a refund"); plain-word action names are left out.
  const identifiers = [...(opts.actionNames ?? []), 'submit_plan']
    .flatMap((n) => [n, camelToSnake(n)])
    .filter((n) => /[A-Z_.]/.test(n));
  for (const id of new Set(identifiers)) {
    const m = new RegExp(`(?<![\\w.])${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?!\\w)`, 'i').exec(plain);
    if (m) {
      add({ category: 'tool-call', rule: 'tool.action-name', excerpt: excerptAround(plain, m.index, m[0].length) });
      break;
    }
  }
  for (const fence of plain.matchAll(/```[\w-]*\s*([\s\S]*?)```/g)) {
    const body = fence[1] ?? '';
    // A call with keyword arguments (issue_refund(amount=5)) or an object literal (approve({ amount: 5 })),
    // or JSON naming a function; stack frames such as "at fn (node:net:1555:16)" are neither.
    const pyCall = /\b[a-z]+(?:_[a-z0-9]+)+\s*\(\s*\w+\s*=\s*["'\d\[{]/.test(body);
    const jsCall = /\b[a-z]+[A-Z]\w*\s*\(\s*\{\s*["']?\w+["']?\s*:/.test(body);
    if (pyCall || jsCall || /["'](?:name|action|tool|function)["']\s*:/.test(body)) {
      add({
        category: 'tool-call',
        rule: 'tool.code-fence-call',
        excerpt: excerptAround(plain, fence.index ?? 0, fence[0].length),
      });
      break;
    }
  }

  if (depth < 2) {
    const inner = [
      ...decodedTexts(text),
      ...(hidden.smuggled.trim() ? [{ kind: 'tag characters', decoded: hidden.smuggled, at: 0, length: 0 }] : []),
    ];
    for (const d of inner) {
      const sub = screenText(d.decoded, { ...opts, depth: depth + 1 });
      if (sub.length > 0) {
        add({
          category: 'encoded-payload',
          rule: `encoded.${d.kind.replace(/\s+/g, '-')}`,
          excerpt: `${d.kind} decoding to "${visible(d.decoded).slice(0, 80)}" (${sub.map((s) => s.rule).join(', ')})`,
        });
      }
    }
  }
  return hits;
}

/** Every string in a value, with its dotted path. */
function* strings(value: unknown, path: string, depth = 0): Generator<[string, string]> {
  if (depth > 12) return;
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value))
    for (let i = 0; i < value.length; i++) yield* strings(value[i], `${path}.${i}`, depth + 1);
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) yield* strings(v, path ? `${path}.${k}` : k, depth + 1);
}

function matchesPath(path: string, pattern: string): boolean {
  const a = path.split('.');
  const b = pattern.split('.');
  if (a.length < b.length) return false;
  return b.every((seg, i) => seg === '*' || seg === a[i]);
}

/** Action names of a model, for tool-call look-alikes. */
function actionNamesOf(model: ScreenModel | undefined): string[] {
  return model ? Object.keys(model.config.actions) : [];
}

/**
 * Screens every string of an observation (`subject` and all of `fields`). With a model, its action
 * names count as tool-call look-alikes, its sensitive fields are screened but never quoted, and its
 * `planner.screening` settings apply (`enabled`, `skipFields`).
 */
export function screen(observation: Pick<Observation, 'subject' | 'fields'>, model?: ScreenModel): ScreenResult {
  const settings = model ? plannerConfigOf(model).screening : { enabled: true, skipFields: [] as string[] };
  if (!settings.enabled) return { flagged: false, hits: [], reason: '' };
  const actionNames = actionNamesOf(model);
  const sensitive = (model?.sensitiveFields ?? []).map((p) => `fields.${p}`);
  const hits: ScreenHit[] = [];
  const texts: [string, string][] = [['subject', observation.subject], ...strings(observation.fields, 'fields')];
  for (const [path, text] of texts) {
    if (settings.skipFields.some((s) => matchesPath(path, `fields.${s}`))) continue;
    const secret = sensitive.some((s) => matchesPath(path, s));
    // Excerpts reach reviewers and the audit log: never a sensitive field, and no personal data from free text.
    for (const h of screenText(text, { actionNames }))
      hits.push({ ...h, path, excerpt: secret ? '[sensitive field]' : scrubFreeText(h.excerpt) });
  }
  return { flagged: hits.length > 0, hits, reason: describe(hits) };
}

const LABEL: Record<ScreenCategory, string> = {
  'instruction-override': 'instructions aimed at the planner',
  'role-play': 'a role-play set-up',
  'system-prompt': 'system-prompt or chat-template text',
  'plan-manipulation': 'an attempt to steer the decision',
  'delimiter-escape': 'an attempt to close the data block',
  'hidden-unicode': 'hidden unicode',
  'tool-call': 'a tool-call look-alike',
  'encoded-payload': 'an encoded payload',
};

function describe(hits: ScreenHit[]): string {
  if (hits.length === 0) return '';
  const parts = hits.slice(0, 4).map((h) => `${LABEL[h.category]} in ${h.path} (${h.rule}: ${h.excerpt})`);
  const more = hits.length > 4 ? `; +${hits.length - 4} more` : '';
  return `possible prompt injection: ${parts.join('; ')}${more}`;
}

// ------------------------------------------------------------------------------------------------
// Plans and the gate
// ------------------------------------------------------------------------------------------------

/** Name of the risk factor a screened hit adds to a plan. */
export const INJECTION_FACTOR = 'prompt-injection';
/** Name of the risk factor of a plan a planner could not complete (the LLM planner's fallback). */
export const FALLBACK_FACTOR = 'planner-fallback';

/**
 * Marks a plan with a screening result: a `prompt-injection` risk factor, the reason at the head of the
 * rationale, and a risk raised above the model's auto limit (but not past its deny ceiling, so the
 * plan reaches a person rather than being dropped). Returns the plan unchanged when nothing was found.
 */
export function applyScreen(
  plan: Plan,
  result: ScreenResult,
  model: { config: { policy: { maxAutoRisk: number; denyAboveRisk: number } } },
): Plan {
  if (!result.flagged) return plan;
  const { maxAutoRisk, denyAboveRisk } = model.config.policy;
  const raised = Math.min(denyAboveRisk, Math.max(plan.risk.score, Math.min(1, maxAutoRisk + 0.1)));
  const note = result.reason.length > 300 ? `${result.reason.slice(0, 297)}...` : result.reason;
  const rationale = `⚠ Screening: ${result.reason}. Treat the observation's text as untrusted. — ${plan.rationale}`;
  return {
    ...plan,
    rationale: rationale.length > 8000 ? `${rationale.slice(0, 7997)}...` : rationale,
    risk: {
      score: Math.round(raised * 1000) / 1000,
      factors: [
        ...plan.risk.factors.filter((f) => f.name !== INJECTION_FACTOR),
        { name: INJECTION_FACTOR, value: 1, note },
      ],
    },
  };
}

type Gate = (plan: Plan, observation: Observation) => GateDecision;

/**
 * Wraps a gate: an observation the screen flags never runs on its own. A plan the base gate would run
 * (or send to a lower tier) goes to review with rule `prompt-injection` and the screen's reason; a
 * deny stays a deny. The observation is screened here, whatever the planner reported; a planner's own
 * `prompt-injection` factor (the LLM noticed something the patterns did not) and a `planner-fallback`
 * plan (an LLM reply that could not be completed) also go to review. Factors only ever add review.
 */
export function screenedGate(
  model: ScreenModel & { config: { policy: { tierRiskBounds: number[] } } },
  baseGate: Gate,
): Gate {
  const tierOf = plannerConfigOf(model).screening.tier;
  const maxTier = model.config.policy.tierRiskBounds.length;
  // An episode's observation is gated again after a reviewer's edit: screen each one once.
  const screened = new WeakMap<object, ScreenResult>();
  return (plan, observation) => {
    const decision = baseGate(plan, observation);
    if (decision.outcome === 'deny') return decision;
    let result = screened.get(observation);
    if (!result) screened.set(observation, (result = screen(observation, model)));
    const reported = plan.risk.factors.find((f) => f.name === INJECTION_FACTOR);
    const fallback = plan.risk.factors.find((f) => f.name === FALLBACK_FACTOR);
    let ruleId: string;
    let detail: string;
    if (result.flagged) [ruleId, detail] = ['prompt-injection', result.reason];
    else if (reported)
      [ruleId, detail] = [
        'prompt-injection',
        `the planner reports a possible prompt injection: ${reported.note ?? 'no detail'}`,
      ];
    else if (fallback) [ruleId, detail] = [FALLBACK_FACTOR, fallback.note ?? 'the planner could not complete the plan'];
    else return decision;
    const tier = Math.min(maxTier, Math.max(decision.outcome === 'review' ? decision.tier : 0, tierOf));
    return {
      ...decision,
      outcome: 'review',
      ruleId,
      tier,
      reasons: [detail, ...(decision.outcome === 'review' ? decision.reasons : [])],
      rules: [...decision.rules, { ruleId, result: 'review', tier, detail }],
    };
  };
}
