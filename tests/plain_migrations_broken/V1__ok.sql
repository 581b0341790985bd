CREATE TABLE fine (id int);
