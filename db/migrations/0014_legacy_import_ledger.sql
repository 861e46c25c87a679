CREATE TABLE "legacy_import_ledger" (
	"entity" text NOT NULL,
	"legacy_id" text NOT NULL,
	"warren_id" text,
	"recorded_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "legacy_import_ledger_entity_legacy_id_pk" PRIMARY KEY("entity","legacy_id")
);
