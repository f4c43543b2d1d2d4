//! What Sluice knows of each Stripe object a sink writes: the parameters its create and update endpoints
//! take, what a create needs, and the values an enumerated parameter takes. One table, from Stripe's API
//! reference for the pinned version ([`super::API_VERSION`]), each entry citing the page it came from.
//!
//! The sink checks every record against it before sending (a record Stripe would refuse is a reject,
//! with no request), sends an update only the parameters the update endpoint takes, and knows what to do
//! when a re-imported record changes a parameter that Stripe takes on create only.

/// One object a Stripe sink can write.
#[derive(Debug)]
pub struct ObjectSpec {
    /// The API path (`tax_rates`).
    pub path: &'static str,
    /// The API reference page the lists below come from.
    pub reference: &'static str,
    /// The top-level parameters the create endpoint takes.
    pub create: &'static [&'static str],
    /// The parameters the update endpoint takes: a top-level name takes everything under it
    /// (`metadata` takes `metadata[sku]`); a nested one only what is under it (`fixed_amount[currency_options]`).
    pub update: &'static [&'static str],
    /// What a record must hold for Stripe to create the object.
    pub required: &'static [Required],
    /// Parameters whose value is one of a list.
    pub enums: &'static [(&'static str, &'static [&'static str])],
    /// What a re-import that changes a create-only parameter does.
    pub on_changed: OnChanged,
}

/// A requirement of Stripe's create endpoint, on a record's parameters (bracketed names).
#[derive(Debug)]
pub enum Required {
    /// This parameter, or something under it.
    Field(&'static str),
    /// At least one of these.
    OneOf(&'static [&'static str]),
    /// `then`, where `field` is given (with `value`, where it has that value).
    When {
        /// The parameter whose presence (or value) brings the requirement.
        field: &'static str,
        /// The value of `field` that brings it; `None`: any value.
        value: Option<&'static str>,
        /// The parameter then required.
        then: &'static str,
    },
}

/// What Sluice does when a record imported again changes a parameter Stripe takes on create only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChanged {
    /// Stripe's own way for objects that cannot change once made but can be archived: a new object is
    /// created, and the old one archived (`active=false`). The record's external id then maps to the new one.
    Replace,
    /// For a product whose `default_price_data` changed, Stripe's way: a new price for the product, made its
    /// `default_price`, and the old default price archived. Any other change is refused.
    NewDefaultPrice,
    /// The record is rejected, naming the parameter: Stripe cannot change it, and no new object can stand in
    /// for the old one without breaking what refers to it (a coupon's redemptions, a customer's payments).
    Refuse,
}

const BOOLEAN: &[&str] = &["true", "false"];
const TAX_BEHAVIOR: &[&str] = &["exclusive", "inclusive", "unspecified"];

/// Every object a Stripe sink writes, by API path.
pub const OBJECTS: &[ObjectSpec] = &[
    ObjectSpec {
        path: "products",
        reference: "https://docs.stripe.com/api/products/create",
        create: &[
            "name",
            "active",
            "default_price_data",
            "description",
            "expand",
            "id",
            "images",
            "marketing_features",
            "metadata",
            "package_dimensions",
            "shippable",
            "statement_descriptor",
            "tax_code",
            "type",
            "unit_label",
            "url",
        ],
        update: &[
            "active",
            "default_price",
            "description",
            "expand",
            "images",
            "marketing_features",
            "metadata",
            "name",
            "package_dimensions",
            "shippable",
            "statement_descriptor",
            "tax_code",
            "unit_label",
            "url",
        ],
        required: &[
            Required::Field("name"),
            Required::When { field: "default_price_data", value: None, then: "default_price_data[currency]" },
        ],
        enums: &[("type", &["good", "service"]), ("active", BOOLEAN), ("shippable", BOOLEAN)],
        on_changed: OnChanged::NewDefaultPrice,
    },
    ObjectSpec {
        path: "prices",
        reference: "https://docs.stripe.com/api/prices/create",
        create: &[
            "currency",
            "active",
            "billing_scheme",
            "currency_options",
            "custom_unit_amount",
            "expand",
            "lookup_key",
            "metadata",
            "nickname",
            "product",
            "product_data",
            "recurring",
            "tax_behavior",
            "tiers",
            "tiers_mode",
            "transfer_lookup_key",
            "transform_quantity",
            "unit_amount",
            "unit_amount_decimal",
        ],
        update: &[
            "active",
            "currency_options",
            "expand",
            "lookup_key",
            "metadata",
            "nickname",
            "tax_behavior",
            "transfer_lookup_key",
        ],
        required: &[
            Required::Field("currency"),
            Required::OneOf(&["product", "product_data"]),
            Required::OneOf(&["unit_amount", "unit_amount_decimal", "custom_unit_amount", "tiers"]),
            Required::When { field: "recurring", value: None, then: "recurring[interval]" },
            Required::When { field: "billing_scheme", value: Some("tiered"), then: "tiers_mode" },
        ],
        enums: &[
            ("active", BOOLEAN),
            ("billing_scheme", &["per_unit", "tiered"]),
            ("recurring[interval]", &["day", "week", "month", "year"]),
            ("recurring[usage_type]", &["licensed", "metered"]),
            ("tax_behavior", TAX_BEHAVIOR),
            ("tiers_mode", &["graduated", "volume"]),
        ],
        on_changed: OnChanged::Replace,
    },
    ObjectSpec {
        path: "customers",
        reference: "https://docs.stripe.com/api/customers/create",
        create: &[
            "address",
            "balance",
            "business_name",
            "cash_balance",
            "description",
            "email",
            "expand",
            "individual_name",
            "invoice_prefix",
            "invoice_settings",
            "metadata",
            "name",
            "next_invoice_sequence",
            "payment_method",
            "phone",
            "preferred_locales",
            "shipping",
            "source",
            "tax",
            "tax_exempt",
            "tax_id_data",
            "test_clock",
            "validate",
        ],
        update: &[
            "address",
            "balance",
            "business_name",
            "cash_balance",
            "default_source",
            "description",
            "email",
            "expand",
            "individual_name",
            "invoice_prefix",
            "invoice_settings",
            "metadata",
            "name",
            "next_invoice_sequence",
            "phone",
            "preferred_locales",
            "shipping",
            "source",
            "tax",
            "tax_exempt",
            "validate",
        ],
        required: &[],
        enums: &[("tax_exempt", &["exempt", "none", "reverse"])],
        on_changed: OnChanged::Refuse,
    },
    ObjectSpec {
        path: "coupons",
        reference: "https://docs.stripe.com/api/coupons/create",
        create: &[
            "amount_off",
            "applies_to",
            "currency",
            "currency_options",
            "duration",
            "duration_in_months",
            "expand",
            "id",
            "max_redemptions",
            "metadata",
            "name",
            "percent_off",
            "redeem_by",
        ],
        update: &["currency_options", "expand", "metadata", "name"],
        required: &[
            Required::OneOf(&["percent_off", "amount_off"]),
            Required::When { field: "amount_off", value: None, then: "currency" },
            Required::When { field: "duration", value: Some("repeating"), then: "duration_in_months" },
        ],
        enums: &[("duration", &["forever", "once", "repeating"])],
        on_changed: OnChanged::Refuse,
    },
    ObjectSpec {
        path: "promotion_codes",
        reference: "https://docs.stripe.com/api/promotion_codes/create",
        create: &[
            "promotion",
            "active",
            "code",
            "customer",
            "expand",
            "expires_at",
            "max_redemptions",
            "metadata",
            "restrictions",
        ],
        update: &["active", "expand", "metadata", "restrictions"],
        required: &[Required::Field("promotion[type]"), Required::Field("promotion[coupon]")],
        enums: &[("promotion[type]", &["coupon"]), ("active", BOOLEAN)],
        on_changed: OnChanged::Refuse,
    },
    ObjectSpec {
        path: "tax_rates",
        reference: "https://docs.stripe.com/api/tax_rates/create",
        create: &[
            "display_name",
            "inclusive",
            "percentage",
            "active",
            "country",
            "description",
            "expand",
            "jurisdiction",
            "metadata",
            "state",
            "tax_type",
        ],
        update: &[
            "active",
            "country",
            "description",
            "display_name",
            "expand",
            "jurisdiction",
            "metadata",
            "state",
            "tax_type",
        ],
        required: &[
            Required::Field("display_name"),
            Required::Field("inclusive"),
            Required::Field("percentage"),
        ],
        enums: &[
            ("inclusive", BOOLEAN),
            ("active", BOOLEAN),
            (
                "tax_type",
                &[
                    "amusement_tax",
                    "communications_tax",
                    "gst",
                    "hst",
                    "igst",
                    "jct",
                    "lease_tax",
                    "pst",
                    "qst",
                    "retail_delivery_fee",
                    "rst",
                    "sales_tax",
                    "service_tax",
                    "vat",
                ],
            ),
        ],
        on_changed: OnChanged::Replace,
    },
    ObjectSpec {
        path: "shipping_rates",
        reference: "https://docs.stripe.com/api/shipping_rates/create",
        create: &[
            "display_name",
            "delivery_estimate",
            "expand",
            "fixed_amount",
            "metadata",
            "tax_behavior",
            "tax_code",
            "type",
        ],
        update: &["active", "expand", "fixed_amount[currency_options]", "metadata", "tax_behavior"],
        required: &[
            Required::Field("display_name"),
            Required::Field("fixed_amount[amount]"),
            Required::Field("fixed_amount[currency]"),
        ],
        enums: &[("type", &["fixed_amount"]), ("tax_behavior", TAX_BEHAVIOR)],
        on_changed: OnChanged::Replace,
    },
    ObjectSpec {
        path: "subscriptions",
        reference: "https://docs.stripe.com/api/subscriptions/create",
        create: &[
            "customer",
            "add_invoice_items",
            "application_fee_percent",
            "automatic_tax",
            "backdate_start_date",
            "billing_cycle_anchor",
            "billing_cycle_anchor_config",
            "billing_mode",
            "billing_thresholds",
            "cancel_at",
            "cancel_at_period_end",
            "collection_method",
            "currency",
            "days_until_due",
            "default_payment_method",
            "default_source",
            "default_tax_rates",
            "description",
            "discounts",
            "expand",
            "invoice_settings",
            "items",
            "metadata",
            "off_session",
            "on_behalf_of",
            "payment_behavior",
            "payment_settings",
            "pending_invoice_item_interval",
            "proration_behavior",
            "transfer_data",
            "trial_end",
            "trial_from_plan",
            "trial_period_days",
            "trial_settings",
        ],
        // A subscription's items change through their own ids (`items[0][id]`), which a file of new
        // subscriptions does not hold: items are taken on create only, so a changed item is refused.
        update: &[
            "application_fee_percent",
            "automatic_tax",
            "billing_thresholds",
            "cancel_at",
            "cancel_at_period_end",
            "collection_method",
            "days_until_due",
            "default_payment_method",
            "default_source",
            "default_tax_rates",
            "description",
            "discounts",
            "expand",
            "invoice_settings",
            "metadata",
            "off_session",
            "on_behalf_of",
            "payment_behavior",
            "payment_settings",
            "pending_invoice_item_interval",
            "proration_behavior",
            "transfer_data",
            "trial_end",
            "trial_from_plan",
            "trial_settings",
        ],
        required: &[Required::Field("customer"), Required::Field("items[0][price]")],
        enums: &[
            ("collection_method", &["charge_automatically", "send_invoice"]),
            (
                "payment_behavior",
                &["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"],
            ),
            ("proration_behavior", &["always_invoice", "create_prorations", "none"]),
            ("cancel_at_period_end", BOOLEAN),
        ],
        on_changed: OnChanged::Refuse,
    },
];

/// The object at API path `path`, where Sluice knows it.
pub fn object_spec(path: &str) -> Option<&'static ObjectSpec> {
    OBJECTS.iter().find(|spec| spec.path == path)
}

/// The API paths of every object Sluice writes, for a message.
pub fn supported_objects() -> String {
    OBJECTS.iter().map(|spec| spec.path).collect::<Vec<_>>().join(", ")
}

/// Whether the bracketed parameter `name` is `entry` or lies under it (`metadata[sku]` under `metadata`).
fn within(name: &str, entry: &str) -> bool {
    name.strip_prefix(entry).is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
}

impl ObjectSpec {
    /// Whether the create endpoint takes the bracketed parameter `name`.
    pub fn creates(&self, name: &str) -> bool {
        self.create.iter().any(|entry| within(name, entry))
    }

    /// Whether the update endpoint takes the bracketed parameter `name`.
    pub fn updates(&self, name: &str) -> bool {
        self.update.iter().any(|entry| within(name, entry))
    }

    /// Why Stripe would refuse to create this object from `params` (bracketed names and their values),
    /// where it would.
    pub fn refusal(&self, params: &[(String, String)]) -> Option<String> {
        let given = |field: &str| params.iter().any(|(name, value)| within(name, field) && !value.is_empty());
        let value_of = |field: &str| params.iter().find(|(name, _)| name == field).map(|(_, v)| v.as_str());
        if let Some((name, _)) = params.iter().find(|(name, _)| !self.creates(name)) {
            return Some(format!(
                "`{name}` is not a parameter of {} (the parameters are on {})",
                self.path, self.reference
            ));
        }
        for (field, values) in self.enums {
            if let Some(value) = value_of(field)
                && !values.contains(&value)
            {
                return Some(format!(
                    "`{field}` is `{value}`, and Stripe takes one of: {}",
                    values.join(", ")
                ));
            }
        }
        for required in self.required {
            let missing = match required {
                Required::Field(field) => (!given(field)).then(|| format!("`{field}`")),
                Required::OneOf(fields) => (!fields.iter().any(|field| given(field))).then(|| {
                    let names: Vec<String> = fields.iter().map(|field| format!("`{field}`")).collect();
                    format!("one of {}", names.join(", "))
                }),
                Required::When { field, value, then } => {
                    let applies = match value {
                        None => given(field),
                        Some(value) => value_of(field) == Some(value),
                    };
                    (applies && !given(then)).then(|| match value {
                        None => format!("`{then}` (as `{field}` is given)"),
                        Some(value) => format!("`{then}` (as `{field}` is `{value}`)"),
                    })
                }
            };
            if let Some(missing) = missing {
                return Some(format!("Stripe needs {missing} to create {}", self.path));
            }
        }
        None
    }

    /// What a mapping of target fields (dotted paths, as templates write them) lacks for every record to
    /// satisfy the requirements that do not depend on a value; the first such, where there is one.
    pub fn unmapped(&self, targets: &[String]) -> Option<String> {
        let mapped = |field: &str| {
            targets.iter().any(|target| {
                let target = super::bracketed(target);
                within(&target, field) || within(field, &target)
            })
        };
        self.required.iter().find_map(|required| match required {
            Required::Field(field) if !mapped(field) => Some(format!("`{field}`")),
            Required::OneOf(fields) if !fields.iter().any(|field| mapped(field)) => {
                let names: Vec<String> = fields.iter().map(|field| format!("`{field}`")).collect();
                Some(format!("one of {}", names.join(", ")))
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    #[test]
    fn every_object_updates_only_what_it_creates_or_what_its_update_adds() {
        for spec in OBJECTS {
            assert!(spec.reference.ends_with(&format!("/api/{}/create", spec.path)), "{}", spec.path);
            for (field, _) in spec.enums {
                assert!(spec.creates(field) || spec.updates(field), "{}: {field}", spec.path);
            }
        }
        let prices = object_spec("prices").unwrap();
        assert!(prices.updates("metadata[sku]") && !prices.updates("unit_amount"));
        let shipping = object_spec("shipping_rates").unwrap();
        assert!(shipping.updates("fixed_amount[currency_options][eur][amount]"));
        assert!(!shipping.updates("fixed_amount[amount]"));
    }

    #[test]
    fn a_record_stripe_would_refuse_is_named_with_the_reason() {
        let coupons = object_spec("coupons").unwrap();
        assert_eq!(coupons.refusal(&params(&[("percent_off", "25"), ("duration", "once")])), None);
        assert_eq!(
            coupons.refusal(&params(&[("duration", "once")])).unwrap(),
            "Stripe needs one of `percent_off`, `amount_off` to create coupons"
        );
        assert_eq!(
            coupons.refusal(&params(&[("amount_off", "500")])).unwrap(),
            "Stripe needs `currency` (as `amount_off` is given) to create coupons"
        );
        assert_eq!(
            coupons.refusal(&params(&[("percent_off", "5"), ("duration", "repeating")])).unwrap(),
            "Stripe needs `duration_in_months` (as `duration` is `repeating`) to create coupons"
        );
        assert_eq!(
            coupons.refusal(&params(&[("percent_off", "5"), ("duration", "weekly")])).unwrap(),
            "`duration` is `weekly`, and Stripe takes one of: forever, once, repeating"
        );
        assert!(
            coupons.refusal(&params(&[("percent_off", "5"), ("colour", "red")])).unwrap().starts_with(
                "`colour` is not a parameter of coupons (the parameters are on https://docs.stripe.com/api/coupons/create)"
            )
        );
        let tax_rates = object_spec("tax_rates").unwrap();
        assert_eq!(
            tax_rates.refusal(&params(&[("display_name", "VAT"), ("inclusive", "false")])).unwrap(),
            "Stripe needs `percentage` to create tax_rates"
        );
        // An empty value is no value: Stripe reads it as "unset".
        assert_eq!(
            tax_rates
                .refusal(&params(&[("display_name", ""), ("inclusive", "false"), ("percentage", "20")]))
                .unwrap(),
            "Stripe needs `display_name` to create tax_rates"
        );
    }

    #[test]
    fn a_mapping_lacking_a_required_field_is_named() {
        let targets = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let prices = object_spec("prices").unwrap();
        assert_eq!(prices.unmapped(&targets(&["currency", "product", "unit_amount"])), None);
        assert_eq!(prices.unmapped(&targets(&["product", "unit_amount"])).unwrap(), "`currency`");
        assert_eq!(
            prices.unmapped(&targets(&["currency", "unit_amount"])).unwrap(),
            "one of `product`, `product_data`"
        );
        let shipping = object_spec("shipping_rates").unwrap();
        assert_eq!(shipping.unmapped(&targets(&["display_name", "fixed_amount"])), None);
        let subscriptions = object_spec("subscriptions").unwrap();
        assert_eq!(subscriptions.unmapped(&targets(&["customer", "items.0.price"])), None);
    }
}
