/**
 * The injection screen's corpus: the patterns it looks for, in every language it reads, and the
 * categories they belong to. Data only; the matching is in `injection-scan.ts`, the normalisation the
 * patterns run on in `injection-normalise.ts`.
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

/** A hit on one text, before it is given the path of the field it came from. */
export interface RawHit {
  category: ScreenCategory;
  rule: string;
  excerpt: string;
}

export interface Pattern {
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

export const PATTERNS: Pattern[] = [
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
export const COMPACT =
  /(?:ignore|disregard|forget|override)(?:all|any|every)?(?:of)?(?:the|your)?(?:previous|prior|above|earlier|preceding|system|existing)(?:instructions?|rules|prompts?|directives|guidelines)|(?:ignore|disregard|forget)(?:all|your)(?:instructions?|rules|prompts?|guidelines)|doanythingnow/u;

/** Shapes of a function call written as JSON or markup. */
export const TOOL_SHAPES: Pattern[] = [
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
