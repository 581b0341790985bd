use seedbed::DbEnum;

#[derive(DbEnum)]
#[db_enum(type_name = "order_status")]
enum OrderStatus {
    Pending,
    Shipped { carrier: String },
}

fn main() {}
