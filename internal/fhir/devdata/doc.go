// Package devdata is the demo data set that "smartgate serve --dev" loads
// on first start (DESIGN.md, "Dev mode"): six patients with a year or two
// of care each, the practitioners and organizations behind it, and enough
// of every US Core 6.1.0 profile that SMART launches, the patient picker,
// FHIR searches and certification-style checks have real data to work on.
//
// The set is deterministic. Ids are fixed and readable; every date is a
// number of days before the anchor date, 2025-06-02, at a fixed zone
// offset per site (no time.Now); the small variation in vital signs and
// in lab values the roster does not list comes from a math/rand/v2 PCG
// with a fixed seed per patient. Set builds the same bytes on every call.
//
// Every body is FHIR R4 JSON with resourceType and id first and
// meta.profile naming the US Core profile it follows (Binary and Group
// have none); the store adds meta.versionId and meta.lastUpdated. Set
// returns the resources in load order: a resource comes after every
// resource it references. Names, addresses, phone numbers (555-01xx),
// MRNs and NPIs (valid check digits) are made up; codes are LOINC, SNOMED
// CT, RxNorm, CVX, CPT, UCUM and HL7 terminology as the profiles in
// US Core 6.1.0 bind them.
//
// # Patients
//
// Patients returns them in this order; the first is the default demo
// patient.
//
//	pat-amy-shaw        Amy Victoria Shaw, female, 1987, Cambridge MA; hypertension, prediabetes, a health concern
//	pat-jose-alvarez    José Luis Álvarez, male, 1958, Austin TX, speaks Spanish; type 2 diabetes, penicillin allergy
//	pat-lily-chen       Lily Mei Chen, female, 2017 (a child), Nashua NH; asthma, peanut allergy; mother rp-grace-chen
//	pat-eleanor-brooks  Eleanor Ruth Brooks (maiden name Whitfield), female, 1936, Providence RI; atrial fibrillation, pacemaker
//	pat-walter-obrien   Walter James O'Brien, male, 1941, Albuquerque NM, died 2025-01-18; COPD, heart failure
//	pat-renee-cote      Renée Françoise Côté, female, 1979, Lewiston ME, speaks French; hypothyroidism, smoker
//
// # Practitioners and the directory
//
// Practitioners returns them in this order; each has a PractitionerRole
// whose id is the practitioner's with "prr-" for "pra-".
//
//	pra-ines-munoz      Inés Carolina Muñoz, MD, family medicine, Lakeside (Amy, Eleanor, Renée)
//	pra-robert-hayes    Robert Allen Hayes, MD, internal medicine, Sunbelt (José, Walter)
//	pra-priya-raman     Priya Raman, MD, pediatrics, Lakeside (Lily)
//
// Organizations: org-lakeside (Lakeside Medical Group, Boston MA),
// org-sunbelt (Sunbelt Community Health, Austin TX) and
// org-acme-health-plan (the payer of every Coverage). Locations:
// loc-lakeside-clinic, loc-lakeside-hospital, loc-sunbelt-clinic,
// loc-sunbelt-hospital. Group grp-demo-patients holds every patient (for
// Group $export); Medication med-metformin-er-500 is the one drug given
// by reference rather than by code.
//
// # Ids of the clinical data
//
// With <p> a patient's id without "pat-" (amy-shaw) and <n> a visit, 1 to
// 3:
//
//	enc-<p>-<n>                                   Encounter (class AMB, EMER or IMP)
//	obs-<p>-<vital>-<n>                           vital signs: bp, heart-rate, resp-rate, temp, spo2, weight, height, bmi
//	obs-<p>-<test>-<n>                            lab results: glucose, sodium, potassium, creatinine, a1c, cholesterol,
//	                                              hdl, ldl, triglycerides, hemoglobin, wbc, platelets, inr, tsh, bnp
//	sr-<p>-<panel>-<n>, spm-..., dr-...           the order, specimen and report of a panel: bmp, lipid, cbc, a1c, inr, tsh, bnp
//	obs-<p>-smoking                               smoking status
//	cond-<p>-<name>                               Condition, e.g. cond-amy-shaw-hypertension
//	allergy-<p>-<substance>                       AllergyIntolerance, e.g. allergy-amy-shaw-none-known
//	medrx-<p>-<drug>, meddisp-<p>-<drug>          MedicationRequest and MedicationDispense, e.g. medrx-jose-alvarez-metformin
//	imm-<p>-<vaccine>                             Immunization, e.g. imm-jose-alvarez-zoster (declined)
//	proc-<p>-<name>, device-<p>-<name>            Procedure and Device, e.g. device-eleanor-brooks-pacemaker
//	goal-<p>-<name>, careplan-<p>, careteam-<p>   Goal, CarePlan (assess-plan), CareTeam
//	docref-<p>-note-<n>, bin-<p>-note-<n>         a clinical note (DocumentReference) and its text (Binary)
//	coverage-<p>, qr-<p>-phq2, prov-<p>           Coverage, PHQ-2 QuestionnaireResponse (adults), Provenance
//
// A few records exist to show the rarer must-support elements: Lily's
// diastolic pressure at visit 3 and Walter's height at visit 3 have a
// dataAbsentReason, José's potassium at visit 1 was not reported, Walter
// was on supplemental oxygen at visit 3, and José declined a zoster
// vaccine (status not-done with a statusReason).
package devdata
